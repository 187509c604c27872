"""The fleet page's HTML (Jinja2, autoescaping on: VM names, faults, loads and logs come from
VMs and clouds and are hostile)."""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - JenniferDIRAC fleet</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: left; }
td.n { text-align: right; }
.bar { width: 16em; background: #eee; height: 1em; display: inline-block; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #3a7; }
.bar.full span { background: #c33; }
pre { background: #f5f5f5; padding: .5em; max-height: 30em; overflow: auto; }
.who { float: right; color: #666; }
</style></head>
<body><div class="who">{{ operator.user }} ({{ operator.groups | join(", ") }})</div>
<h1><a href="/">Fleet</a>{% if title != "Fleet" %} / {{ title }}{% endif %}</h1>
{% block body %}{% endblock %}
</body></html>"""

_FLEET = """{% extends "base" %}{% block body %}
<h2>VMs by site and state</h2>
<table id="sites"><tr><th>Site</th>{% for s in states %}<th>{{ s }}</th>{% endfor %}<th>Total</th></tr>
{% for site, counts in fleet.sites | dictsort %}<tr data-site="{{ site }}"><td>{{ site }}</td>
{% for s in states %}<td class="n" data-state="{{ s }}">{{ counts[s] }}</td>{% endfor %}
<td class="n" data-state="total">{{ counts.values() | sum }}</td></tr>{% endfor %}
</table>
<h2>Computing elements</h2>
<table id="ces"><tr><th>CE</th><th>Site</th><th>VMs</th><th>Recent failures</th><th>Backoff</th></tr>
{% for ce, d in fleet.ces | dictsort %}<tr data-ce="{{ ce }}"><td><a href="/ce/{{ ce | urlencode }}">{{ ce }}</a></td>
<td>{{ d.site }}</td><td class="n" data-field="vms">{{ d.states.values() | sum }}</td>
<td class="n" data-field="failures">{{ d.failures | length }}</td>
<td data-field="backoff">{% for b in d.backoffs if b.active %}{{ b.profile }} until {{ b.until }}{% if not loop.last %}, {% endif %}{% else %}-{% endfor %}</td></tr>
{% endfor %}</table>
<h2>Quota</h2>
{% if fleet.quota_error %}<p class="error">{{ fleet.quota_error }}</p>{% endif %}
<table id="quota"><tr><th>Project</th><th>Resource</th><th>Used</th><th>Limit</th><th></th></tr>
{% for q in fleet.quotas %}<tr data-project="{{ q.project }}" data-resource="{{ q.resource }}">
<td>{{ q.project }}</td><td>{{ q.resource }}</td><td class="n" data-field="used">{{ q.used | int }}</td>
<td class="n" data-field="limit">{{ "unlimited" if q.limit < 0 else q.limit | int }}</td>
<td><span class="bar{{ ' full' if q.percent >= 90 }}"><span style="width: {{ q.percent }}%"></span></span> {{ q.percent }}%</td></tr>
{% else %}<tr><td colspan="5">no quota figures (VMDirector MetricsPort and the page's DirectorMetricsURL)</td></tr>{% endfor %}
</table>
{% if plots %}<h2>Accounting</h2>{% for p in plots %}
<figure><img src="/plot/{{ p.name }}.png" alt="{{ p.title }}" width="800"><figcaption>{{ p.title }}</figcaption></figure>{% endfor %}{% endif %}
{% endblock %}"""

_CE = """{% extends "base" %}{% block body %}
<p>Site {{ d.site }}; VMs: {% for s, n in d.states | dictsort %}{{ s }} {{ n }}{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}</p>
<h2>Backoffs</h2><table id="backoffs"><tr><th>Profile</th><th>Until</th><th>Active</th><th>Reason</th></tr>
{% for b in d.backoffs %}<tr><td>{{ b.profile }}</td><td>{{ b.until }}</td><td>{{ "yes" if b.active else "no" }}</td><td>{{ b.reason }}</td></tr>
{% else %}<tr><td colspan="4">none</td></tr>{% endfor %}</table>
<h2>Recent failures</h2><table id="failures"><tr><th>When</th><th>Kind</th><th>What the cloud said</th><th>VM</th></tr>
{% for f in d.failures %}<tr><td>{{ f.created }}</td><td data-field="kind">{{ f.kind }}</td><td>{{ f.text }}</td>
<td><a href="/vm/{{ f.vm_name | urlencode }}">{{ f.vm_name }}</a></td></tr>
{% else %}<tr><td colspan="4">none</td></tr>{% endfor %}</table>
<h2>VMs</h2><table id="vms"><tr><th>VM</th><th>State</th><th>Created</th><th>Last heartbeat</th></tr>
{% for vm in vms %}<tr><td><a href="/vm/{{ vm.vm_name | urlencode }}">{{ vm.vm_name }}</a></td><td>{{ vm.cloud_state }}</td>
<td>{{ vm.created }}</td><td>{{ vm.last_heartbeat or "-" }}</td></tr>{% endfor %}</table>
{% endblock %}"""

_VM = """{% extends "base" %}{% block body %}
<table id="record">{% for key in keys %}<tr><th>{{ key }}</th><td data-field="{{ key }}">{{ vm.record[key] if vm.record[key] is not none else "" }}</td></tr>{% endfor %}</table>
<h2>Heartbeats</h2><table id="heartbeats"><tr><th>Time</th><th>Load</th></tr>
{% for when, load in vm.heartbeats[-50:] %}<tr><td>{{ when }}</td><td>{{ load }}</td></tr>{% else %}<tr><td colspan="2">none</td></tr>{% endfor %}</table>
<h2>Logs</h2>{% for kind, text in vm.logs.items() %}<h3>{{ kind }}</h3><pre data-log="{{ kind }}">{{ text }}</pre>{% else %}<p>none</p>{% endfor %}
{% endblock %}"""

_MESSAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1><p id="message">{{ message }}</p></body></html>"""

VM_KEYS = (
    "vm_name", "ce", "site", "vo", "profile", "flavor", "pilot_reference", "created", "started", "ended",
    "cloud_state", "fault", "deleted", "delete_reason", "failure_kind", "last_heartbeat", "shutdown_code",
    "shutdown_message",
)  # fmt: skip

ENVIRONMENT = Environment(
    loader=DictLoader({"base": _BASE, "fleet": _FLEET, "ce": _CE, "vm": _VM, "message": _MESSAGE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def page(template: str, **context) -> str:
    return ENVIRONMENT.get_template(template).render(**context)
