"""decide on a steady cycle's view of one CE (1,250 VMs, 1% changed), the shape the VMDirector
sees at N = 5,000 over 4 CEs: exactly the changed VMs are ended, and the short cuts taken for the
thousands that did not change (listed pilots not parsed, records of listed VMs not looked at)
leave the few others to the rules."""

from __future__ import annotations

from dataclasses import replace

from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    Account,
    CEView,
    DeleteVM,
    RecordGone,
    SetPilotStatus,
    decide,
)
from lifecycle_testkit import CE, NOW, ago, cloud_vm, el9_record, pilot_record, thresholds

OWNER = OwnerTags(installation="test", ce=CE, profile="el9")


def steady_view(n=1250, ended=12):
    vms, pilots, records = [], {}, {}
    for i in range(n):
        name = f"jdirac-{i:032x}"
        off = i < ended
        vms.append(cloud_vm(name, VMState.SHUTOFF if off else VMState.ACTIVE, ago(3600 + i), OWNER, vm_id=f"id-{i}",
                            launched=ago(3500 + i), updated=ago(30) if off else ago(3600 + i)))
        pilot = pilot_record(name, "Done" if off else "Running", ago(60), ago(3600 + i), job_id=100 + i)
        pilots[pilot.reference] = pilot
        records[name] = el9_record(name, ago(3600 + i), vm_id=f"id-{i}", cloud_state="ACTIVE",
                                   started=ago(3500 + i), last_heartbeat=ago(100))
    return vms, pilots, records


def test_a_steady_cycle_ends_exactly_the_vms_that_changed():
    vms, pilots, records = steady_view()
    decision = decide(CEView(OWNER, vms, pilots, records, {}, NOW, thresholds()))
    ended = {f"jdirac-{i:032x}" for i in range(12)}
    assert {a.vm_name for a in decision.of_type(DeleteVM)} == ended
    assert {a.vm_name for a in decision.of_type(Account)} == ended
    assert not decision.of_type(SetPilotStatus) and not decision.of_type(RecordGone)  # Done pilots stay
    assert len(decision.actions) == 24 and decision.orphan_sightings == frozenset()


def test_pilots_and_records_of_unlisted_vms_among_thousands_listed():
    vms, pilots, records = steady_view(ended=0)
    gone = "jdirac-" + "e" * 32  # left the listing on its own: its Running pilot is Deleted
    pilots[pilot_reference(CE, gone)] = pilot_record(gone, "Running", ago(3000), ago(4000))
    records[gone] = el9_record(gone, ago(4000), vm_id="id-gone", cloud_state="ACTIVE")
    listed = vms[7].name  # a listed VM's pilot under a stamped reference: parsed, its VM is listed
    stamped = pilot_reference(CE, listed) + ":::" + "f" * 32
    pilots[stamped] = replace(pilot_record(listed, "Submitted", ago(3000), ago(4000)), reference=stamped)
    closed = replace(records[vms[9].name], vm_name="jdirac-" + "d" * 32, deleted=ago(50))  # gone, unaccounted
    records[closed.vm_name] = closed

    decision = decide(CEView(OWNER, vms, pilots, records, {}, NOW, thresholds()))

    assert decision.of_type(SetPilotStatus) == [
        SetPilotStatus(pilot_reference(CE, gone), "Deleted", "VM gone from the cloud")
    ]
    assert decision.of_type(RecordGone) == [RecordGone(gone, NOW, "")]
    assert decision.of_type(Account) == [Account(closed.vm_name), Account(gone, after_delete=True)]
    assert not decision.of_type(DeleteVM)


def test_thresholds_of_a_queue_are_those_of_its_vms():
    el8 = thresholds(boot_timeout=100)
    view = CEView(OWNER, [], {}, {}, {}, NOW, thresholds(), queue_thresholds={"el8": el8})
    assert view.thresholds_of_queue("el8") is el8
    assert view.thresholds_of_queue("") is view.thresholds_of_queue("gone") is view.thresholds
    for queue, expected in (("el8", el8), ("gone", view.thresholds), ("", view.thresholds)):
        vm = cloud_vm("jdirac-" + "c" * 32, VMState.ACTIVE, NOW, replace(OWNER, queue=queue))
        assert view.thresholds_of(vm) is expected
    assert view.thresholds_of(cloud_vm("jdirac-" + "d" * 32, VMState.ACTIVE, NOW, None)) is view.thresholds
