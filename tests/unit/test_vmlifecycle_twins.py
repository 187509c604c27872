"""Two VMs under one pilot's name: the one VMDB recorded (else the oldest) is the pilot's, the
others are deleted as twins in the same cycle, without touching the pilot or the VM record."""

import dataclasses

from JenniferDIRAC.Resources.Cloud.model import VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    TWIN,
    Account,
    DeleteVM,
    RecordGone,
    SetPilotStatus,
    VMRecord,
    decide,
    split_twins,
)
from lifecycle_testkit import CE
from test_vmlifecycle_rules import OWNER, ago, pilot, view, vm


def twin_of(original, vm_id, age, state=VMState.ACTIVE, **changes):
    return dataclasses.replace(original, id=vm_id, created=ago(age), state=state, **changes)


def record(name, vm_id=""):
    return VMRecord(vm_name=name, ce=CE, vm_id=vm_id, created=ago(1000))


def test_the_recorded_id_is_kept_and_the_twin_deleted_whatever_its_age():
    kept = vm("a", age=1000)
    late = twin_of(kept, "late", age=2000)  # older, but not the one the CE recorded
    d = decide(view([late, kept], [pilot("a")], [record("a", kept.id)]))
    assert d.of_type(DeleteVM) == [DeleteVM("late", "a", TWIN, d.of_type(DeleteVM)[0].ended, twin=True)]
    assert d.of_type(SetPilotStatus) == [] and d.of_type(Account) == [] and d.of_type(RecordGone) == []


def test_without_a_recorded_id_the_oldest_is_kept():
    first = vm("a", age=1000)
    late = twin_of(first, "id-late", age=10)
    d = decide(view([late, first], [pilot("a")], [record("a")]))
    assert [(a.vm_id, a.reason, a.twin) for a in d.of_type(DeleteVM)] == [("id-late", TWIN, True)]


def test_a_twin_stuck_in_build_does_not_end_a_live_pilot():
    kept = vm("a", age=5000)
    stuck = twin_of(kept, "stuck", age=4000, state=VMState.BUILD)  # past the boot timeout
    d = decide(view([kept, stuck], [pilot("a")], [record("a", kept.id)]))
    assert [(a.vm_id, a.reason) for a in d.of_type(DeleteVM)] == [("stuck", TWIN)]
    assert d.of_type(SetPilotStatus) == []


def test_the_kept_vm_is_still_judged():
    kept = vm("a", state=VMState.SHUTOFF, age=5000, updated=ago(60), launched=ago(4900))
    twin = twin_of(kept, "twin", age=4000, state=VMState.ACTIVE)
    d = decide(view([kept, twin], [pilot("a")], [record("a", kept.id)]))
    deletes = {a.vm_id: a for a in d.of_type(DeleteVM)}
    assert deletes["twin"].twin and deletes["twin"].reason == TWIN
    assert not deletes[kept.id].twin and deletes[kept.id].reason.startswith("VM powered off")
    assert d.of_type(SetPilotStatus) == [SetPilotStatus(pilot_reference(CE, "a"), "Done", deletes[kept.id].reason)]
    assert d.of_type(Account) == [Account("a", after_delete=True)]


def test_a_twin_already_deleting_is_not_deleted_again_until_the_timeout():
    kept = vm("a", age=1000)
    deleting = twin_of(kept, "going", age=900, state=VMState.DELETING, updated=ago(30))
    assert decide(view([kept, deleting], [pilot("a")], [record("a", kept.id)])).of_type(DeleteVM) == []
    stale = dataclasses.replace(deleting, updated=ago(3000))
    d = decide(view([kept, stale], [pilot("a")], [record("a", kept.id)]))
    assert [a.vm_id for a in d.of_type(DeleteVM)] == ["going"]


def test_other_installations_vms_of_the_same_name_are_not_twins():
    from JenniferDIRAC.Resources.Cloud.model import OwnerTags
    mine = vm("a", age=1000)
    theirs = vm("a", age=5000, owner=OwnerTags("inst-b", CE))
    theirs = dataclasses.replace(theirs, id="theirs")
    d = decide(view([theirs, mine], [pilot("a")], [record("a", mine.id)]))
    assert d.actions == []


def test_split_twins_keeps_listing_order_and_one_vm_per_name():
    a, b = vm("a", age=100), vm("b", age=100)
    a2 = twin_of(a, "a2", age=50)
    kept, twins = split_twins([b, a2, a], {})
    assert kept == [b, a] and twins == [a2]
    assert split_twins([a, b], {"a": record("a", "unknown-id")}) == ([a, b], [])
