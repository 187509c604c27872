"""The metrics module's rules: bounded deletion reasons, VM states that leave the listing leave
the gauge, each VM's boot time observed once, MetricsPort errors naming the option."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

import JenniferDIRAC.WorkloadManagementSystem.Agent.VMDirector as director_module
from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import VMState
from JenniferDIRAC.WorkloadManagementSystem.Monitoring.exposition import metrics_port
from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import DirectorMetrics, reason_label
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import VMRecord

T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def test_deletion_reasons_are_a_bounded_set():
    assert reason_label("not booted within 600 s") == "boot_timeout"
    assert reason_label("zombie: pilot Done for more than 300 s") == "zombie"
    assert reason_label("VM powered off (shutdown code 300: x)") == "powered_off"
    assert reason_label("anything a cloud said <script>") == "other"


def test_states_leaving_the_listing_leave_the_gauge_and_boots_count_once():
    metrics = DirectorMetrics()
    vms = [SimpleNamespace(state=VMState.ACTIVE), SimpleNamespace(state=VMState.BUILD)]
    record = VMRecord("vm-a", "ce", created=T0, started=T0 + dt.timedelta(seconds=90))
    failed = VMRecord("vm-b", "ce", created=T0, failure_kind=FailureKind.QUOTA)
    for _ in range(2):
        metrics.ce_listed("ce", "SITE", vms, {"vm-a": record, "vm-b": failed}, {}, T0)
    assert sample(metrics, "jdirac_vms", site="SITE", ce="ce", state="BUILD") == 1
    assert sample(metrics, "jdirac_vm_boot_seconds_count", ce="ce") == 1
    assert sample(metrics, "jdirac_vm_boot_seconds_sum", ce="ce") == 90
    assert sample(metrics, "jdirac_vm_creates_total", site="SITE", ce="ce", outcome="quota") == 1
    assert sample(metrics, "jdirac_vm_creates_total", site="SITE", ce="ce", outcome="created") == 1
    metrics.ce_listed("ce", "SITE", vms[:1], {"vm-a": record}, {}, T0)
    assert sample(metrics, "jdirac_vms", site="SITE", ce="ce", state="BUILD") is None
    assert sample(metrics, "jdirac_vms", site="SITE", ce="ce", state="ACTIVE") == 1


@pytest.mark.parametrize("value", ["http", "-1", "70000"])
def test_a_bad_metrics_port_names_the_option(value):
    with pytest.raises(ValueError, match="option MetricsPort"):
        metrics_port(value)


def test_the_vmdirector_refuses_a_bad_metrics_port():
    agent = object.__new__(director_module.VMDirector)
    options = {"MetricsPort": "nine"}
    agent.am_getOption = lambda name, default=None: options.get(name, default)
    agent.log = MagicMock()
    result = agent.initialize()
    assert not result["OK"] and "MetricsPort" in result["Message"] and "'nine'" in result["Message"]
