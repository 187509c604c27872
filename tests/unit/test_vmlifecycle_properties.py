"""Properties of the lifecycle policy over random fleets and repeated cycles.

A small simulated world (cloud VMs, pilot records, VM records) is run through `decide` cycle
after cycle; actions are applied the way the VMDirector applies them, with some of them failing
(a delete refused by the cloud, a pilot status not written), and the VMs keep changing state
between cycles.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import parse_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    PILOT_TRANSIENT,
    CEView,
    DeleteVM,
    PilotRecord,
    RecordGone,
    SetPilotStatus,
    VMRecord,
    decide,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import VM_ENDS, vm_phase
from lifecycle_testkit import CE, ago, cloud_vm, pilot_record, thresholds, vm_record

START = datetime(2026, 6, 1, tzinfo=UTC)
OWNER = OwnerTags("inst-a", CE)
OWNERS = [OWNER, OwnerTags("inst-b", CE), OwnerTags("inst-a", "other.ce"), None]
TH = thresholds(max_lifetime=20000)
CYCLE = timedelta(seconds=120)
STATES = [VMState.BUILD, VMState.ACTIVE, VMState.SHUTOFF, VMState.ERROR, VMState.UNKNOWN]
PILOT_STATUSES = ["Submitted", "Waiting", "Running", "Unknown", "Done", "Failed", "Aborted", "Deleted"]

vm_spec = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(OWNERS),
        "state": st.sampled_from(STATES),
        "age": st.integers(0, 30000),
        "pilot": st.sampled_from(PILOT_STATUSES + [None]),
        "record": st.booleans(),
        "heartbeat": st.one_of(st.none(), st.integers(0, 3000)),
    }
)
world_spec = st.fixed_dictionaries(
    {
        "vms": st.lists(vm_spec, max_size=12),
        "lost_pilots": st.lists(st.sampled_from(PILOT_STATUSES), max_size=4),
        "cycles": st.integers(1, 8),
        "failures": st.lists(st.booleans(), min_size=100, max_size=100),
        "changes": st.lists(st.sampled_from(STATES + [None] * 5), min_size=100, max_size=100),
    }
)


class World:
    """The cloud, PilotAgentsDB and VMDB as the policy sees them, plus what happened."""

    def __init__(self, spec):
        self.now = START
        self.vms: dict[str, VM] = {}
        self.pilots: dict[str, PilotRecord] = {}
        self.records: dict[str, VMRecord] = {}
        self.failures = iter(spec["failures"])
        self.changes = iter(spec["changes"])
        self.sightings = frozenset()
        self.successful_deletes: dict[str, int] = {}
        self.ever_terminal: set[str] = set()
        self.foreign = set()
        for i, s in enumerate(spec["vms"]):
            name = f"jdirac-{i:032x}"
            owner = s["owner"]
            self.vms[name] = cloud_vm(name, s["state"], ago(s["age"], START), owner, vm_id=f"id-{i}",
                                      updated=ago(s["age"] // 2, START))
            if owner != OWNER:
                self.foreign.add(name)
                continue
            if s["pilot"]:
                pilot = pilot_record(name, s["pilot"], ago(s["age"] // 3, START), ago(s["age"], START))
                self.pilots[pilot.reference] = pilot
            if s["record"]:
                hb = None if s["heartbeat"] is None else ago(s["heartbeat"], START)
                self.records[name] = vm_record(name, ago(s["age"], START), last_heartbeat=hb)
        for j, status in enumerate(spec["lost_pilots"]):
            pilot = pilot_record(f"jdirac-lost{j:028x}", status, ago(50, START), ago(500, START))
            self.pilots[pilot.reference] = pilot
        self.note_terminal()

    def fails(self) -> bool:
        return next(self.failures, False)

    def note_terminal(self):
        self.ever_terminal |= {
            n for n, v in self.vms.items() if v.state.is_terminal and n not in self.foreign
        }

    def cycle(self, allow_failures=True):
        view = CEView(
            OWNER,
            list(self.vms.values()),
            dict(self.pilots),
            dict(self.records),
            {},
            self.now,
            TH,
            self.sightings,
        )
        decision = decide(view)
        self.sightings = decision.orphan_sightings
        failed_refs = set()
        for action in decision.of_type(SetPilotStatus):
            assert parse_reference(action.reference)[0] == CE
            if allow_failures and self.fails():
                failed_refs.add(action.reference)
                continue
            old = self.pilots[action.reference]
            self.pilots[action.reference] = replace(old, status=action.status, last_update=self.now)
        for action in decision.of_type(DeleteVM):
            assert action.vm_name in self.vms and action.vm_name not in self.foreign
            assert self.vms[action.vm_name].id == action.vm_id
            if action.after_pilot in failed_refs:
                continue  # its final pilot status is not recorded yet: next cycle
            if allow_failures and self.fails():
                continue
            del self.vms[action.vm_name]
            self.successful_deletes[action.vm_name] = self.successful_deletes.get(action.vm_name, 0) + 1
            if action.vm_name in self.records:
                self.records[action.vm_name] = replace(self.records[action.vm_name], deleted=self.now)
        for action in decision.of_type(RecordGone):
            self.records[action.vm_name] = replace(self.records[action.vm_name], deleted=action.ended)
        return decision

    def advance(self):
        self.now += CYCLE
        for name, vm in list(self.vms.items()):
            change = next(self.changes, None)
            if change is not None and vm.state not in (VMState.SHUTOFF, VMState.ERROR):
                self.vms[name] = replace(vm, state=change, updated=self.now)
        self.note_terminal()


@settings(max_examples=150, deadline=None)
@given(world_spec)
def test_no_action_ever_targets_another_owner(spec):
    world = World(spec)
    for _ in range(spec["cycles"]):
        decision = world.cycle()
        for action in decision.actions:
            name = getattr(action, "vm_name", None)
            assert name not in world.foreign
            if isinstance(action, SetPilotStatus):
                assert parse_reference(action.reference)[0] == CE
        assert not decision.orphan_sightings & world.foreign
        world.advance()
    assert all(name in world.vms for name in world.foreign)


@settings(max_examples=150, deadline=None)
@given(world_spec)
def test_every_terminal_vm_is_deleted_exactly_once(spec):
    world = World(spec)
    for _ in range(spec["cycles"]):
        world.cycle()
        world.advance()
    # Failures stop; the fleet stops changing state: a few more cycles finish the job.
    world.changes = iter(())
    for _ in range(3):
        world.cycle(allow_failures=False)
        world.now += CYCLE
    for name in world.ever_terminal:
        assert world.successful_deletes.get(name) == 1, name
    assert all(count == 1 for count in world.successful_deletes.values())


@settings(max_examples=150, deadline=None)
@given(world_spec)
def test_no_pilot_left_transient_when_its_vm_is_gone(spec):
    world = World(spec)
    for _ in range(spec["cycles"]):
        world.cycle()
        world.advance()
    world.changes = iter(())
    world.now += timedelta(seconds=TH.lost_pilot_grace)
    for _ in range(2):
        world.cycle(allow_failures=False)
        world.now += CYCLE
    for ref, record in world.pilots.items():
        vm_name = parse_reference(ref)[1]
        if vm_name not in world.vms:
            assert record.status not in PILOT_TRANSIENT, (ref, record.status)


@settings(max_examples=150, deadline=None)
@given(world_spec)
def test_every_end_of_a_vm_s_life_follows_the_state_machine(spec):
    """Each DeleteVM names its VMEnd, which ends the VM's phase; a pilot status set together with
    it is the one VM_ENDS gives (a powered-off VM's pilot may also be Failed: shutdown code)."""
    world = World(spec)
    for _ in range(spec["cycles"]):
        listed = dict(world.vms)
        decision = world.cycle()
        statuses = {a.reference: a.status for a in decision.of_type(SetPilotStatus)}
        for action in decision.of_type(DeleteVM):
            rule = VM_ENDS[action.end]
            assert vm_phase(listed[action.vm_name].state) in rule.phases, (action.end, listed[action.vm_name].state)
            if action.after_pilot:
                assert statuses[action.after_pilot] in {rule.pilot_status, "Failed"} - {""}, action
        world.advance()
