"""The endpoint's admission and log-rate pieces on their own, with a settable clock."""

import pytest

from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.limits import EndpointLimits, PerVMAdmission, Refused
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.refusals import RefusalLog


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_per_vm_concurrency_rate_and_forgetting():
    clock = Clock()
    admission = PerVMAdmission(EndpointLimits(max_concurrent_requests_per_vm=2, requests_per_minute_per_vm=60,
                                              request_burst_per_vm=3), clock=clock)
    admission.admit("vm-a")
    admission.admit("vm-a")
    with pytest.raises(Refused, match="at most 2 requests at once"):
        admission.admit("vm-a")
    admission.admit("vm-b")  # another VM has its own budget
    admission.release("vm-a")
    admission.admit("vm-a")  # third of the burst of 3
    admission.release("vm-a")
    with pytest.raises(Refused, match="too many requests") as refused:
        admission.admit("vm-a")
    assert refused.value.retry_after == 1  # one request per second refills
    clock.now += 1
    admission.admit("vm-a")
    for vm in ("vm-a", "vm-a", "vm-b"):
        admission.release(vm)
    assert admission.forget_idle() == 1  # vm-b's bucket has refilled, vm-a's not yet
    clock.now += 10
    assert admission.forget_idle() == 1 and len(admission) == 0


def test_refusal_log_one_line_per_interval_then_a_summary():
    clock = Clock()
    lines = []
    log = RefusalLog(lambda level, message: lines.append((level, message)), interval_seconds=60, clock=clock)
    for i in range(5):
        log.refused("invalid token", f"invalid token {i}")
    log.refused("rate", "too fast")
    assert lines == [("warn", "invalid token 0")]
    clock.now += 61
    log.refused("invalid token", "invalid token again")
    assert lines[1:] == [("warn", "5 more refused requests not logged one by one (invalid token: 4, rate: 1)"),
                         ("warn", "invalid token again")]
    log.flush()
    assert len(lines) == 3  # nothing suppressed since
