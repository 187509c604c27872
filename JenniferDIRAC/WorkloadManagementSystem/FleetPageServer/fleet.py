"""What the fleet page shows, read from VMDB (VMStateClient) and from the VMDirector's metrics
(the project quotas it reads from the clouds: the page needs no cloud credentials)."""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

#: the states of the sites x states table, in lifecycle order
STATES = ("BUILD", "ACTIVE", "SHUTOFF", "ERROR", "DELETING", "UNKNOWN")
RECENT_FAILURES = 20


class FleetUnavailable(Exception):
    """VMDB cannot be read."""


@dataclass
class CEDetail:
    ce: str
    site: str
    states: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)  # newest first: kind, text, vm_name, created
    backoffs: list[dict] = field(default_factory=list)  # profile, until, reason, active


@dataclass
class QuotaBar:
    project: str
    resource: str
    used: float
    limit: float  # -1: unlimited

    @property
    def percent(self) -> int:
        return 0 if self.limit <= 0 else min(100, round(100 * self.used / self.limit))


@dataclass
class Fleet:
    sites: dict[str, Counter]
    ces: dict[str, CEDetail]
    quotas: list[QuotaBar]
    quota_error: str = ""


def _value(result):
    if not result["OK"]:
        raise FleetUnavailable(result["Message"])
    return result["Value"]


def read_fleet(client, metrics_url: str = "", now: dt.datetime | None = None) -> Fleet:
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sites: dict[str, Counter] = {}
    ces: dict[str, CEDetail] = {}
    for vm in _value(client.getVMs(active_only=True)):
        state = vm.get("cloud_state") or "UNKNOWN"
        sites.setdefault(vm["site"], Counter())[state] += 1
        ces.setdefault(vm["ce"], CEDetail(vm["ce"], vm["site"])).states[state] += 1
    for row in _value(client.getBackoffs()):
        detail = ces.setdefault(row["ce"], CEDetail(row["ce"], ""))
        until = row.get("until")
        detail.backoffs.append(
            {
                "profile": row.get("profile") or "-",
                "until": until,
                "reason": row.get("reason") or "",
                "active": bool(row.get("active")),
            }
        )
    for ce, detail in ces.items():
        for vm in _value(client.getVMs(ce=ce, limit=500)):
            if vm.get("failure_kind"):
                detail.failures.append(
                    {
                        "kind": vm["failure_kind"],
                        "text": vm.get("delete_reason") or "",
                        "vm_name": vm["vm_name"],
                        "created": vm["created"],
                    }
                )
            if not detail.site:
                detail.site = vm["site"]
        detail.failures = detail.failures[:RECENT_FAILURES]
    quotas, error = [], ""
    if metrics_url:
        try:
            quotas = read_quotas(metrics_url)
        except (OSError, ValueError) as exc:
            error = f"cannot read the VMDirector's metrics: {exc}"
    return Fleet(sites, ces, quotas, error)


def read_quotas(metrics_url: str) -> list[QuotaBar]:
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read(4 * 1024 * 1024).decode()
    used, limits = {}, {}
    for family in text_string_to_metric_families(text):
        target = {"jdirac_quota_used": used, "jdirac_quota_limit": limits}.get(family.name)
        if target is None:
            continue
        for sample in family.samples:
            target[(sample.labels["project"], sample.labels["resource"])] = sample.value
    return [QuotaBar(p, r, used[(p, r)], limits.get((p, r), -1)) for p, r in sorted(used)]


@dataclass
class VMHistory:
    record: dict
    heartbeats: list[tuple]
    logs: dict[str, str]  # kind -> text (decoded with replacement; escaped when rendered)


def read_vm(client, vm_name: str) -> VMHistory | None:
    records = _value(client.getVMs(names=[vm_name]))
    if not records:
        return None
    heartbeats = _value(client.getHeartbeats(vm_name))
    logs = {kind: printable(data) for kind, data in sorted(_value(client.getLogs(vm_name)).items())}
    return VMHistory(records[0], heartbeats, logs)


def printable(data: bytes) -> str:
    """A VM's bytes as text: invalid UTF-8 replaced, control characters (but newline and tab)
    shown as U+FFFD; HTML escaping is the template's."""
    text = data.decode("utf-8", "replace")
    return "".join(c if c in "\n\t" or c.isprintable() else "\ufffd" for c in text)
