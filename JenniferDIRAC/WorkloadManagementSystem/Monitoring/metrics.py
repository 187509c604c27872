"""The VMDirector's and the VM endpoint's Prometheus metrics (official client, own registries).

Every metric is defined and filled here; the agents make one call per event
(``DirectorMetrics.ce_listed``, ``deleted``, ``backoff_started``, ``instrument``) and the
endpoint's figures are read from its app at scrape time (``EndpointCollector``).

VMDirector (per CE, refreshed each cycle from its one listing and VMDB):
- ``jdirac_vms{site,ce,state}``: the cloud's VMs of this installation by state;
- ``jdirac_vm_creates_total{site,ce,outcome}``: VM records seen (the CE records every create in
  VMDB; ``outcome`` is ``created`` or the FailureKind of a refused create);
- ``jdirac_vm_deletions_total{site,ce,reason}``: deletions by the policy's reason (a bounded
  set of words: ``REASONS``);
- ``jdirac_backoffs_total{site,ce,profile}`` and ``jdirac_backoff_active{site,ce,profile}``;
- ``jdirac_quota_used{project,resource}`` / ``jdirac_quota_limit{project,resource}`` (instances,
  cores, ram_mb; limit -1 = unlimited);
- ``jdirac_vm_boot_seconds{ce}``, ``jdirac_vm_life_seconds{ce}`` histograms (created -> started,
  started -> ended, each VM observed once);
- ``jdirac_cloud_calls_total{ce,call,outcome}``, ``jdirac_cloud_call_seconds{ce,call}``: the
  CloudBackend calls the VMDirector makes (listing, quota, deletes, flavor properties).

VM endpoint: ``jdirac_endpoint_responses_total{code}`` and
``jdirac_endpoint_refusals_total{reason}``, ``jdirac_endpoint_requests_in_progress``.
"""

from __future__ import annotations

import time
from collections import Counter as _Tally
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from JenniferDIRAC.Resources.Cloud.errors import CloudError
from JenniferDIRAC.Resources.Cloud.model import VMState

from .exposition import metrics_port, serve

#: Deletion reason prefixes (VMLifecycle's verdict texts) -> label; anything else is "other".
REASONS = {
    "still deleting": "deleting_timeout",
    "VM powered off": "powered_off",
    "cloud error": "cloud_error",
    "not booted": "boot_timeout",
    "past its maximum lifetime": "max_lifetime",
    "zombie": "zombie",
    "no heartbeat": "heartbeat_timeout",
    "orphan": "orphan",
    "twin": "twin",
}
#: Boot and life time buckets (seconds): a minute to a week.
BOOT_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
LIFE_BUCKETS = (60, 600, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400)


def reason_label(reason: str) -> str:
    for prefix, label in REASONS.items():
        if reason.startswith(prefix):
            return label
    return "other"


class DirectorMetrics:
    """The VMDirector's metrics in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.vms = Gauge(
            "jdirac_vms", "VMs of this installation listed by the cloud", ["site", "ce", "state"], registry=r
        )
        self.creates = Counter(
            "jdirac_vm_creates",
            "VM records (creates) seen, by outcome",
            ["site", "ce", "outcome"],
            registry=r,
        )
        self.deletions = Counter(
            "jdirac_vm_deletions",
            "VMs deleted by the VMDirector, by reason",
            ["site", "ce", "reason"],
            registry=r,
        )
        self.backoffs = Counter("jdirac_backoffs", "Backoffs started", ["site", "ce", "profile"], registry=r)
        self.backoff_active = Gauge(
            "jdirac_backoff_active",
            "1 while the CE (profile) backs off",
            ["site", "ce", "profile"],
            registry=r,
        )
        self.quota_used = Gauge("jdirac_quota_used", "Project usage", ["project", "resource"], registry=r)
        self.quota_limit = Gauge(
            "jdirac_quota_limit", "Project limit (-1: unlimited)", ["project", "resource"], registry=r
        )
        self.boot = Histogram(
            "jdirac_vm_boot_seconds",
            "Seconds from create to running",
            ["ce"],
            buckets=BOOT_BUCKETS,
            registry=r,
        )
        self.life = Histogram(
            "jdirac_vm_life_seconds",
            "Seconds from running to ended",
            ["ce"],
            buckets=LIFE_BUCKETS,
            registry=r,
        )
        self.calls = Counter(
            "jdirac_cloud_calls", "Cloud backend calls", ["ce", "call", "outcome"], registry=r
        )
        self.call_seconds = Histogram(
            "jdirac_cloud_call_seconds", "Cloud backend call latency", ["ce", "call"], registry=r
        )
        self._seen: dict[str, set[str]] = {}  # CE -> VM names counted as creates
        self._booted: dict[str, set[str]] = {}
        self._ended: dict[str, set[str]] = {}
        self._states: dict[str, set[tuple[str, str]]] = {}  # CE -> (site, state) labels set
        self._backoff_labels: dict[str, set[tuple[str, str]]] = {}
        self._sites: dict[str, str] = {}

    # --- one CE's cycle -------------------------------------------------------------------------
    def ce_listed(
        self, ce: str, site: str, vms: Iterable, records: Mapping, backoffs: Mapping, now=None
    ) -> None:
        """The cloud's listing, VMDB's records ({name: VMRecord}) and backoffs ({profile:
        BackoffState}) of `ce` this cycle."""
        self._sites[ce] = site
        tally = _Tally(vm.state.value for vm in vms)
        for old in self._states.get(ce, set()) - {(site, s) for s in tally}:
            self.vms.remove(old[0], ce, old[1])
        for state in VMState:
            if state.value in tally:
                self.vms.labels(site, ce, state.value).set(tally[state.value])
        self._states[ce] = {(site, s) for s in tally}

        seen, booted, ended = (d.setdefault(ce, set()) for d in (self._seen, self._booted, self._ended))
        for name, record in records.items():
            if name not in seen:
                kind = record.failure_kind.value if record.failure_kind else "created"
                self.creates.labels(site, ce, kind).inc()
            if record.created and record.started and name not in booted:
                self.boot.labels(ce).observe(max(0.0, (record.started - record.created).total_seconds()))
                booted.add(name)
            if record.started and record.ended and name not in ended:
                self.life.labels(ce).observe(max(0.0, (record.ended - record.started).total_seconds()))
                ended.add(name)
        # Only the names VMDB still returns are kept: the sets stay as small as the live fleet.
        names = set(records)
        seen |= names
        for bag in (seen, booted, ended):
            bag &= names

        now = now or datetime.now(UTC)
        active = {(site, profile) for profile, state in backoffs.items() if state.in_backoff(now)}
        for old in self._backoff_labels.get(ce, set()) - active:
            self.backoff_active.labels(old[0], ce, old[1]).set(0)
        for labels in active:
            self.backoff_active.labels(labels[0], ce, labels[1]).set(1)
        self._backoff_labels[ce] = self._backoff_labels.get(ce, set()) | active

    def read_quota(self, project: str, backend) -> None:
        """The project's usage and limits from the cloud (one request); a failure leaves the
        previous figures."""
        try:
            quota = backend.quota()
        except CloudError:
            return
        self.quota(project, quota)

    def quota(self, project: str, quota) -> None:
        for resource, used, limit in (
            ("instances", quota.used_instances, quota.max_instances),
            ("cores", quota.used_cores, quota.max_cores),
            ("ram_mb", quota.used_ram_mb, quota.max_ram_mb),
        ):
            self.quota_used.labels(project, resource).set(used)
            self.quota_limit.labels(project, resource).set(-1 if limit is None or limit < 0 else limit)

    def deleted(self, ce: str, reasons: Iterable[str]) -> None:
        site = self._sites.get(ce, "")
        for reason in reasons:
            self.deletions.labels(site, ce, reason_label(reason)).inc()

    def backoff_started(self, ce: str, profile: str) -> None:
        site = self._sites.get(ce, "")
        self.backoffs.labels(site, ce, profile).inc()
        self.backoff_active.labels(site, ce, profile).set(1)
        self._backoff_labels.setdefault(ce, set()).add((site, profile))

    def instrument(self, ce: str, backend):
        """`backend` with its calls counted and timed (the same object's other attributes)."""
        return _TimedBackend(self, ce, backend)


class _TimedBackend:
    TIMED = frozenset({"list_vms", "quota", "delete_vms", "flavor_properties", "list_installation_vms",
                       "list_installation_changes"})

    def __init__(self, metrics: DirectorMetrics, ce: str, backend):
        self._metrics, self._ce, self._backend = metrics, ce, backend

    def __getattr__(self, name):
        value = getattr(self._backend, name)
        if name not in self.TIMED or not callable(value):
            return value

        def timed(*args, **kwargs):
            start = time.monotonic()
            outcome = "ok"
            try:
                return value(*args, **kwargs)
            except Exception as exc:
                outcome = type(exc).__name__
                raise
            finally:
                self._metrics.calls.labels(self._ce, name, outcome).inc()
                self._metrics.call_seconds.labels(self._ce, name).observe(time.monotonic() - start)

        return timed


class NullDirectorMetrics:
    """Metrics off (MetricsPort = 0): every call does nothing."""

    registry = None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def instrument(self, ce: str, backend):
        return backend


def start_director_metrics(port_option, host: str, log=None):
    """DirectorMetrics served on MetricsPort (NullDirectorMetrics when it is 0); ValueError
    naming the option, OSError if the port cannot be bound."""
    port = metrics_port(port_option)
    if not port:
        return NullDirectorMetrics()
    metrics = DirectorMetrics()
    _server, bound = serve(metrics.registry, host, port)
    if log:
        log(f"http://{host}:{bound}/metrics")
    return metrics


class EndpointCollector:
    """The VM endpoint app's own counters, read at scrape time (nothing added to its hot path
    but a counter per refusal reason)."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        responses = CounterMetricFamily(
            "jdirac_endpoint_responses", "Responses by HTTP status", labels=["code"]
        )
        for code, count in sorted(dict(self.app.counters).items()):
            responses.add_metric([str(code)], count)
        yield responses
        refusals = CounterMetricFamily(
            "jdirac_endpoint_refusals", "Refused requests by reason", labels=["reason"]
        )
        for reason, count in sorted(dict(self.app.refusals.totals).items()):
            refusals.add_metric([reason], count)
        yield refusals
        yield GaugeMetricFamily(
            "jdirac_endpoint_requests_in_progress", "Requests being served", value=self.app.in_progress
        )


def endpoint_registry(app) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(EndpointCollector(app))
    return registry


def serve_endpoint_metrics(app, port_option, host: str):
    """Serve the endpoint app's metrics on MetricsPort (None when it is 0); returns the
    exposition server."""
    port = metrics_port(port_option)
    if not port:
        return None
    server, _bound = serve(endpoint_registry(app), host, port)
    return server
