"""What bounds the endpoint's work: the limits (CS options of the VMEndpoint agent) and the
per-VM admission control (concurrent requests and a token-bucket request rate per VM token)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointLimits:
    max_upload_bytes: int = 1048576  # one log upload
    max_bytes_per_vm: int = 4194304  # all logs of one VM together
    max_logs_per_vm: int = 8  # distinct log names per VM
    min_heartbeat_seconds: float = 10.0  # heartbeats closer together are refused (429)
    max_concurrent_requests: int = 64  # authenticated requests in progress; beyond: 503, the VM retries
    max_concurrent_requests_per_vm: int = 4  # in progress for one VM token; beyond: 429
    requests_per_minute_per_vm: float = 60.0  # sustained rate of one VM token; beyond: 429
    request_burst_per_vm: int = 30  # requests one VM may make at once before the rate applies
    body_timeout_seconds: float = 30.0  # TOTAL time to receive one request body (not per read)
    store_threads: int = 8  # database calls at once (each runs in a worker thread)
    refusal_log_seconds: float = 60.0  # one log line about refused requests per interval, then a summary


@dataclass
class _VMAdmission:
    tokens: float
    refilled: float
    in_progress: int = 0


class Refused(Exception):
    def __init__(self, reason: str, retry_after: int):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PerVMAdmission:
    """Admits a request of one VM, or refuses it (too many at once, or too fast).

    Keyed by the VM a verified token names, so one VM cannot spend another's budget. The state
    of a VM is dropped by ``forget_idle`` once it has no request in progress and a full bucket.
    """

    def __init__(self, limits: EndpointLimits, clock: Callable[[], float] = time.monotonic):
        self._concurrent = limits.max_concurrent_requests_per_vm
        self._rate = limits.requests_per_minute_per_vm / 60.0
        self._burst = float(limits.request_burst_per_vm)
        self._clock = clock
        self._lock = threading.Lock()
        self._vms: dict[str, _VMAdmission] = {}

    def admit(self, vm_name: str) -> None:
        """Count one request of `vm_name` in progress; raises Refused. Pair with ``release``."""
        now = self._clock()
        with self._lock:
            state = self._vms.get(vm_name)
            if state is None:
                state = self._vms[vm_name] = _VMAdmission(tokens=self._burst, refilled=now)
            state.tokens = min(self._burst, state.tokens + (now - state.refilled) * self._rate)
            state.refilled = now
            if state.in_progress >= self._concurrent:
                raise Refused(f"at most {self._concurrent} requests at once per VM", retry_after=5)
            if state.tokens < 1.0:
                wait = (1.0 - state.tokens) / self._rate if self._rate > 0 else 60
                raise Refused("too many requests from this VM", retry_after=max(1, int(wait + 0.999)))
            state.tokens -= 1.0
            state.in_progress += 1

    def release(self, vm_name: str) -> None:
        with self._lock:
            state = self._vms.get(vm_name)
            if state is not None and state.in_progress > 0:
                state.in_progress -= 1

    def forget_idle(self) -> int:
        """Drop the state of VMs with nothing in progress and a refilled bucket; returns how many."""
        now = self._clock()
        with self._lock:
            idle = [
                name for name, s in self._vms.items()
                if s.in_progress == 0 and s.tokens + (now - s.refilled) * self._rate >= self._burst
            ]  # fmt: skip
            for name in idle:
                del self._vms[name]
        return len(idle)

    def __len__(self) -> int:
        return len(self._vms)
