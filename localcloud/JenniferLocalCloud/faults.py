"""Fault injection: the one cross-cutting layer through which every request and VM passes.

Request faults (HTTP 500/503, timeouts, dropped connections, 401 on an expired token, latency)
are rules matched on (service, method, path template) before the handler runs; a "lost
response" rule lets the handler run (the server is created) and then drops the answer, after
holding the request so that the work lands late. VM faults (go to ERROR, stay in BUILD, quota
refused, quota recheck) are a queue the compute state draws from when a server is created, then
seeded per-create rates. Rules fire a given number of ``times`` and/or with a ``probability``
drawn from their own seeded generator, so every run with the same seed and requests replays
the same faults. A rule ``armed_by`` another kind waits for a rule of that kind to fire, then
applies once (a lost create whose lookup fails too: ``armed_by="lost_response"``). Everything that fired is appended to :attr:`FaultInjector.events`.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

REQUEST_KINDS = ("http_error", "timeout", "drop", "expire_token", "latency", "garble", "lost_response")
VM_KINDS = ("error", "stuck", "quota_refused", "quota_recheck")

NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


@dataclass
class FaultRule:
    """A request fault. ``None`` in service/method/path matches anything; path is a glob
    on the route template (``/servers*``, ``/v3/auth/tokens``)."""

    kind: str
    service: str | None = None
    method: str | None = None
    path: str | None = None
    status: int = 500
    seconds: float = 0.0
    #: lost_response only: seconds the request is held before the handler runs.
    delay: float = 0.0
    message: str = ""
    times: int | None = 1
    probability: float = 1.0
    seed: int = 0
    #: the rule applies only once a rule of this kind has fired (again after each such firing):
    #: "the lookup after a lost create fails too"
    armed_by: str | None = None
    armed: bool = False
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request fault kind {self.kind!r}; use one of {REQUEST_KINDS}")
        self._rng.seed(self.seed)

    def matches(self, service: str, method: str, template: str) -> bool:
        return (
            (self.service is None or self.service == service)
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or fnmatch.fnmatchcase(template, self.path))
        )

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


@dataclass
class VmFate:
    """What happens to the next server created."""

    kind: str
    code: int = 500
    message: str = NO_VALID_HOST

    def __post_init__(self) -> None:
        if self.kind not in VM_KINDS:
            raise ValueError(f"unknown VM fault kind {self.kind!r}; use one of {VM_KINDS}")


@dataclass
class VmFateRate:
    """Each server created meets this fate with ``probability`` (its own seeded draw)."""

    fate: VmFate
    probability: float
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"VM fault probability must be in [0, 1], got {self.probability}")
        self._rng.seed(self.seed)


@dataclass(frozen=True)
class FaultEvent:
    kind: str
    service: str
    method: str
    template: str
    detail: str = ""


class FaultInjector:
    """Holds the fault rules and the VM fate queue; see the module docstring."""

    def __init__(self, seed: int = 0, latency: float = 0.0) -> None:
        self.seed = seed
        self.latency = latency
        self.rules: list[FaultRule] = []
        self.vm_fates: deque[VmFate] = deque()
        #: (flavor name, zone) with no host; None matches any (no_capacity / capacity_back)
        self.no_capacity_for: set[tuple[str | None, str | None]] = set()
        self.vm_fate_rates: list[VmFateRate] = []
        self.events: list[FaultEvent] = []
        self._lock = threading.Lock()
        self._rule_count = 0
        # Set when the cloud stops, so that injected waits end at once.
        self.stopping = threading.Event()

    # --- request faults --------------------------------------------------------------------
    def add(self, kind: str, **options: Any) -> FaultRule:
        with self._lock:
            options.setdefault("seed", self.seed + self._rule_count)
            self._rule_count += 1
            rule = FaultRule(kind=kind, **options)
            self.rules.append(rule)
            return rule

    def http_error(self, status: int = 500, **match: Any) -> FaultRule:
        """Answer matching requests with ``status`` (500, 503, ...) in the service's error shape."""
        return self.add("http_error", status=status, **match)

    def timeout(self, seconds: float = 30.0, **match: Any) -> FaultRule:
        """Hold matching requests for ``seconds`` and then drop them: clients time out."""
        return self.add("timeout", seconds=seconds, **match)

    def drop_connection(self, **match: Any) -> FaultRule:
        """Close the connection without any response."""
        return self.add("drop", **match)

    def lose_response(self, delay: float = 0.0, seconds: float = 0.0, **match: Any) -> FaultRule:
        """The request is held ``delay`` seconds, then handled for real (a POST /servers creates
        its server), then held ``seconds`` more and the connection is dropped without an answer:
        "create done, response lost". A ``delay`` past the client's timeout makes the work land
        after the client gave up."""
        return self.add("lost_response", delay=delay, seconds=seconds, **match)

    def garble(self, **match: Any) -> FaultRule:
        """Answer 200 with a truncated JSON body, as a proxy cutting a response short does."""
        return self.add("garble", **match)

    def expire_token(self, **match: Any) -> FaultRule:
        """Expire the caller's token now and answer 401, as a real expiry mid-session does."""
        return self.add("expire_token", **match)

    def slow(self, seconds: float, **match: Any) -> FaultRule:
        """Extra latency on matching requests (on top of the cloud-wide ``latency``)."""
        return self.add("latency", seconds=seconds, times=match.pop("times", None), **match)

    def random_errors(self, rate: float, statuses: tuple[int, ...] = (500, 503), seed: int | None = None,
                      **match: Any) -> list[FaultRule]:
        """Seeded flakiness: each matching request fails with probability ``rate``."""
        rules = []
        base = self.seed if seed is None else seed
        match.setdefault("times", None)
        for offset, status in enumerate(statuses):
            rules.append(self.add("http_error", status=status, probability=rate / len(statuses),
                                  seed=base + offset, **match))
        return rules

    def script(self, steps: list[dict[str, Any]]) -> list[FaultRule | VmFate]:
        """Load faults from plain data, e.g. ``[{"kind": "http_error", "status": 503,
        "service": "compute", "times": 2}, {"kind": "error"}, {"kind": "stuck"}]``."""
        made: list[FaultRule | VmFate] = []
        for step in steps:
            options = dict(step)
            kind = options.pop("kind")
            if kind in VM_KINDS and "rate" in options:
                made.append(self.vm_fate_rate(kind, options.pop("rate"), **options).fate)
            elif kind in VM_KINDS:
                made.append(self.next_vms(kind, options.pop("count", 1), **options)[0])
            else:
                made.append(self.add(kind, **options))
        return made

    def before_request(self, service: str, method: str, template: str) -> FaultRule | None:
        """The rule that fires for this request, if any (counts it and records the event)."""
        with self._lock:
            for rule in self.rules:
                if rule.exhausted or not rule.matches(service, method, template):
                    continue
                if rule.armed_by is not None and not rule.armed:
                    continue
                if rule.probability < 1.0 and rule._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                rule.armed = False
                for follower in self.rules:
                    if follower.armed_by == rule.kind:
                        follower.armed = True
                detail = str(rule.status) if rule.kind == "http_error" else ""
                self.events.append(FaultEvent(rule.kind, service, method, template, detail))
                return rule
        return None

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)

    # --- VM faults -------------------------------------------------------------------------
    def next_vms(self, kind: str, count: int = 1, **options: Any) -> list[VmFate]:
        fates = [VmFate(kind=kind, **options) for _ in range(count)]
        with self._lock:
            self.vm_fates.extend(fates)
        return fates

    def no_capacity(self, flavor: str | None = None, zone: str | None = None) -> None:
        """Every server of this flavor (name) in this zone goes to ERROR with Nova's "No valid
        host" fault (code 500), after the create was accepted, until capacity_back()."""
        with self._lock:
            self.no_capacity_for.add((flavor, zone))

    def capacity_back(self, flavor: str | None = None, zone: str | None = None) -> None:
        with self._lock:
            self.no_capacity_for.discard((flavor, zone))

    def lacks_capacity(self, flavor: str, zone: str) -> bool:
        with self._lock:
            return any(f in (None, flavor) and z in (None, zone) for f, z in self.no_capacity_for)

    def error_next_vms(self, count: int = 1, message: str = NO_VALID_HOST, code: int = 500) -> list[VmFate]:
        """The next ``count`` servers created go to ERROR with this fault."""
        return self.next_vms("error", count, message=message, code=code)

    def stick_next_vms_in_build(self, count: int = 1) -> list[VmFate]:
        """The next ``count`` servers stay in BUILD for ever."""
        return self.next_vms("stuck", count)

    def refuse_next_creates_for_quota(self, count: int = 1) -> list[VmFate]:
        """The next ``count`` creates get Nova's 403 quota error whatever the usage."""
        return self.next_vms("quota_refused", count, code=403)

    def quota_recheck_next_vms(self, count: int = 1) -> list[VmFate]:
        """The next ``count`` creates are accepted (202) but the server goes ERROR with a 413
        quota fault, as Nova's conductor recheck does when a burst of creates races."""
        return self.next_vms("quota_recheck", count, code=413)

    def vm_fate_rate(self, kind: str, rate: float, seed: int | None = None, **options: Any) -> VmFateRate:
        """From now on each server created meets fate ``kind`` with probability ``rate``
        (seeded; the queue of :meth:`next_vms` is served first). Rates are drawn in the order
        they were added and the first that fires wins."""
        if kind == "quota_refused":
            options.setdefault("code", 403)
        elif kind == "quota_recheck":
            options.setdefault("code", 413)
        with self._lock:
            if seed is None:
                seed = self.seed + self._rule_count
            self._rule_count += 1
            rate_rule = VmFateRate(VmFate(kind=kind, **options), rate, seed)
            self.vm_fate_rates.append(rate_rule)
            return rate_rule

    def take_vm_fate(self, service: str = "compute") -> VmFate | None:
        with self._lock:
            if self.vm_fates:
                fate = self.vm_fates.popleft()
            else:
                # Every rate draws on every create, so one rate's sequence does not depend on
                # whether another fired.
                fired = [r.fate for r in self.vm_fate_rates if r._rng.random() < r.probability]
                if not fired:
                    return None
                fate = fired[0]
            self.events.append(FaultEvent(fate.kind, service, "POST", "/servers", fate.message))
            return fate

    # --- observation -----------------------------------------------------------------------
    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for e in self.events if kind is None or e.kind == kind)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.vm_fates.clear()
            self.no_capacity_for.clear()
            self.vm_fate_rates.clear()
            self.events.clear()
