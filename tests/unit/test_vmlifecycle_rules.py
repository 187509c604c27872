"""One test (at least) per rule of the VM lifecycle policy."""

from datetime import UTC, datetime, timedelta

import pytest

from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (
    BackoffState,
    ClearBackoff,
    ReleaseProbe,
    StartBackoff,
    submission_allowance,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    Account,
    CEView,
    DeleteVM,
    PilotRecord,
    RecordGone,
    SetPilotStatus,
    Thresholds,
    VMRecord,
    decide,
)
from lifecycle_testkit import CE, cloud_vm, pilot_record, thresholds
from lifecycle_testkit import ago as ago_from

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OWNER = OwnerTags(installation="inst-a", ce=CE)
TH = thresholds()


def ago(seconds):
    return ago_from(seconds, NOW)


def vm(name, state=VMState.ACTIVE, age=1000, owner=OWNER, profile="", fault="", updated=None, launched=None,
       fault_kind=None, queue=""):
    tags = OwnerTags(owner.installation, owner.ce, profile=profile, queue=queue) if owner else None
    return cloud_vm(name, state, ago(age), tags, updated=updated, launched=launched, fault=fault,
                    fault_kind=fault_kind)


def pilot(name, status="Running", updated=100, submitted=1000, job_id=0):
    return pilot_record(name, status, ago(updated), ago(submitted), job_id)


def view(vms=(), pilots=(), records=(), backoffs=(), sightings=frozenset(), th=TH, queues=None):
    return CEView(
        owner=OWNER,
        vms=list(vms),
        pilots={p.reference: p for p in pilots},
        records={r.vm_name: r for r in records},
        backoffs={b.profile: b for b in backoffs},
        now=NOW,
        thresholds=th,
        orphan_sightings=frozenset(sightings),
        queue_thresholds=queues or {},
    )


def deleted_names(decision):
    return [a.vm_name for a in decision.of_type(DeleteVM)]


def test_healthy_running_vm_is_left_alone():
    d = decide(view([vm("a")], [pilot("a")]))
    assert d.actions == []


def test_shutoff_vm_records_done_then_is_deleted():
    d = decide(view([vm("a", VMState.SHUTOFF, updated=ago(10), launched=ago(990))], [pilot("a", job_id=7)]))
    status, delete = d.of_type(SetPilotStatus), d.of_type(DeleteVM)
    assert status == [SetPilotStatus(pilot_reference(CE, "a"), "Done", "VM powered off")]
    assert delete[0].vm_name == "a" and delete[0].after_pilot == pilot_reference(CE, "a")
    assert d.actions.index(status[0]) < d.actions.index(delete[0])
    assert d.of_type(StartBackoff) == []  # it ran long enough
    assert Account("a", after_delete=True) in d.actions


def test_shutoff_vm_with_final_pilot_is_deleted_without_status_change():
    d = decide(view([vm("a", VMState.SHUTOFF, updated=ago(10))], [pilot("a", "Done")]))
    assert d.of_type(SetPilotStatus) == []
    assert deleted_names(d) == ["a"] and d.of_type(DeleteVM)[0].after_pilot == ""


@pytest.mark.parametrize("kind", [FailureKind.CLOUD_FAULT, None])
def test_error_vm_aborts_pilot_with_the_fault_and_backs_off(kind):
    fault = "Build of instance aborted: Failed to allocate the network(s)"
    d = decide(view([vm("a", VMState.ERROR, fault=fault, fault_kind=kind)], [pilot("a", "Submitted")]))
    assert d.of_type(SetPilotStatus) == [SetPilotStatus(pilot_reference(CE, "a"), "Aborted", f"cloud error: {fault}")]
    assert deleted_names(d) == ["a"]
    (backoff,) = d.of_type(StartBackoff)
    assert backoff.ce == CE and backoff.until == NOW + timedelta(seconds=TH.backoff_seconds)
    assert "Failed to allocate" in backoff.reason


@pytest.mark.parametrize("fault, kind", [
    ("Quota exceeded for instances: Requested 1, but already used 2 of 2 instances", FailureKind.QUOTA),
    ("No valid host was found. There are not enough hosts available.", FailureKind.CAPACITY),
])
def test_error_vm_of_a_full_project_or_cloud_is_deleted_without_backoff(fault, kind):
    d = decide(view([vm("a", VMState.ERROR, fault=fault, fault_kind=kind)], [pilot("a")]))
    assert deleted_names(d) == ["a"]
    assert d.of_type(StartBackoff) == []


def test_the_fault_kind_decides_not_the_fault_text():
    # a cloud fault whose text happens to speak of quota still backs off
    text = "Failed to allocate the network(s), not rescheduling (port quota check timed out)"
    d = decide(view([vm("a", VMState.ERROR, fault=text, fault_kind=FailureKind.CLOUD_FAULT)], [pilot("a")]))
    assert len(d.of_type(StartBackoff)) == 1


def test_build_past_boot_timeout_is_aborted_deleted_and_backs_off():
    d = decide(
        view(
            [vm("a", VMState.BUILD, age=601), vm("b", VMState.BUILD, age=599)],
            [pilot("a", "Submitted"), pilot("b", "Submitted")],
        )
    )
    assert deleted_names(d) == ["a"]
    assert d.of_type(SetPilotStatus)[0].status == "Aborted"
    assert "never booted" in d.of_type(StartBackoff)[0].reason


def test_vm_past_max_lifetime_is_deleted_and_pilot_deleted():
    d = decide(view([vm("old", age=86401), vm("young", age=86399)], [pilot("old"), pilot("young")]))
    assert deleted_names(d) == ["old"]
    assert d.of_type(SetPilotStatus)[0].status == "Deleted"
    assert d.of_type(StartBackoff) == []


def test_zombie_is_deleted_only_after_grace():
    d = decide(
        view([vm("z"), vm("fresh")], [pilot("z", "Done", updated=301), pilot("fresh", "Done", updated=299)])
    )
    assert deleted_names(d) == ["z"]
    assert "zombie" in d.of_type(DeleteVM)[0].reason
    assert d.of_type(SetPilotStatus) == []


def test_orphan_needs_two_sightings_and_the_grace():
    first = decide(view([vm("o", age=1000), vm("new", age=100)]))
    assert deleted_names(first) == []
    assert first.orphan_sightings == {"o", "new"}
    second = decide(view([vm("o", age=1000), vm("new", age=200)], sightings=first.orphan_sightings))
    assert deleted_names(second) == ["o"]
    assert "orphan" in second.of_type(DeleteVM)[0].reason


def test_orphan_sightings_forget_vms_that_got_a_pilot():
    d = decide(view([vm("o")], [pilot("o")], sightings={"o"}))
    assert deleted_names(d) == [] and d.orphan_sightings == frozenset()


def test_foreign_vms_are_never_touched():
    foreign_installation = OwnerTags("inst-b", CE)
    other_ce = OwnerTags("inst-a", "other.ce")
    vms = [
        vm("f1", VMState.ERROR, owner=foreign_installation),
        vm("f2", VMState.SHUTOFF, owner=other_ce, age=10**6),
        vm("f3", VMState.BUILD, owner=None, age=10**6),
    ]
    d = decide(view(vms, sightings={"f1", "f2", "f3"}))
    assert d.actions == [] and d.orphan_sightings == frozenset()


@pytest.mark.parametrize(
    "status,expected",
    [("Submitted", "Aborted"), ("Waiting", "Aborted"), ("Running", "Deleted"), ("Unknown", "Deleted")],
)
def test_lost_pilot_is_made_final(status, expected):
    d = decide(view([], [pilot("gone", status, submitted=121)]))
    assert d.of_type(SetPilotStatus) == [
        SetPilotStatus(pilot_reference(CE, "gone"), expected, "VM gone from the cloud")
    ]


def test_recent_or_final_or_foreign_pilots_are_not_lost():
    pilots = [
        pilot("recent", "Submitted", submitted=60),
        pilot("final", "Done", submitted=5000),
        PilotRecord(pilot_reference("other.ce", "x"), "Running", ago(10), ago(5000)),
        PilotRecord("https://grid.example/123", "Running", ago(10), ago(5000)),
    ]
    assert decide(view([], pilots)).actions == []


def test_heartbeat_lost_fails_pilot_and_deletes():
    rec = VMRecord("h", CE, last_heartbeat=ago(901))
    ok = VMRecord("k", CE, last_heartbeat=ago(899))
    d = decide(view([vm("h"), vm("k"), vm("never")], [pilot("h"), pilot("k"), pilot("never")], [rec, ok]))
    assert deleted_names(d) == ["h"]
    assert d.of_type(SetPilotStatus)[0].status == "Failed"


def test_heartbeat_rule_can_be_disabled():
    th = Thresholds(**{**vars(TH), "heartbeat_timeout": 0})
    d = decide(view([vm("h")], [pilot("h")], [VMRecord("h", CE, last_heartbeat=ago(10**5))], th=th))
    assert d.actions == []


def test_stuck_deleting_is_deleted_again_without_accounting_twice():
    d = decide(
        view([vm("d", VMState.DELETING, updated=ago(601)), vm("e", VMState.DELETING, updated=ago(10))])
    )
    assert deleted_names(d) == ["d"]
    assert d.of_type(Account) == []


def test_record_of_vanished_vm_is_closed_and_accounted():
    recs = [
        VMRecord("gone", CE, created=ago(5000)),
        VMRecord("creating", CE, created=ago(30)),
        VMRecord("done", CE, created=ago(5000), deleted=ago(100)),
        VMRecord("accounted", CE, created=ago(5000), deleted=ago(100), accounted=True),
    ]
    d = decide(view([], [], recs))
    assert d.of_type(RecordGone) == [RecordGone("gone", NOW)]
    assert set(d.of_type(Account)) == {Account("gone", after_delete=True), Account("done")}


def test_fizzle_starts_backoff_but_a_vm_that_ran_a_job_does_not():
    short = vm("s", VMState.SHUTOFF, launched=ago(400), updated=ago(100))
    worked = vm("w", VMState.SHUTOFF, launched=ago(400), updated=ago(100))
    d = decide(view([short], [pilot("s", "Submitted")]))
    assert "fizzled" in d.of_type(StartBackoff)[0].reason
    d = decide(view([worked], [pilot("w", job_id=12)]))
    assert d.of_type(StartBackoff) == []


@pytest.mark.parametrize(
    "code,backoff,status",
    [(300, True, "Done"), (500, True, "Failed"), (200, False, "Done"), (700, False, "Failed")],
)
def test_shutdown_codes(code, backoff, status):
    rec = VMRecord("c", CE, shutdown_code=code, shutdown_text="text")
    d = decide(
        view([vm("c", VMState.SHUTOFF, launched=ago(5000), updated=ago(10))], [pilot("c", job_id=3)], [rec])
    )
    assert bool(d.of_type(StartBackoff)) is backoff
    assert d.of_type(SetPilotStatus)[0].status == status


def test_backoff_is_per_profile_and_one_per_cycle():
    vms = [
        vm("a", VMState.ERROR, profile="big"),
        vm("b", VMState.ERROR, profile="big"),
        vm("c", VMState.ERROR, profile="small"),
    ]
    d = decide(view(vms))
    backoffs = {b.profile: b for b in d.of_type(StartBackoff)}
    assert set(backoffs) == {"big", "small"}
    assert "(and 1 more)" in backoffs["big"].reason


def test_failures_of_vms_older_than_the_running_backoff_do_not_extend_it():
    state = BackoffState(CE, "", NOW + timedelta(seconds=1000))  # started 800 s ago
    old = vm("old", VMState.ERROR, age=900)
    new = vm("new", VMState.ERROR, age=700)
    assert decide(view([old], backoffs=[state])).of_type(StartBackoff) == []
    assert len(decide(view([new], backoffs=[state])).of_type(StartBackoff)) == 1


def test_probe_that_passes_fizzle_clears_backoff():
    state = BackoffState(CE, "", ago(1000))
    probe = vm("p", age=700, launched=ago(650))
    young = vm("y", age=300)
    before_backoff = vm("b", age=5000)
    assert decide(view([probe], [pilot("p")], backoffs=[state])).of_type(ClearBackoff) == [
        ClearBackoff(CE, "")
    ]
    assert decide(view([young, before_backoff], [pilot("y"), pilot("b")], backoffs=[state])).actions == []


def test_probe_that_fizzles_restarts_backoff():
    state = BackoffState(CE, "", ago(1000), probe=True, probe_vm="p", probe_started=ago(900))
    probe = vm("p", VMState.SHUTOFF, age=900, launched=ago(850), updated=ago(800))
    d = decide(view([probe], [pilot("p", "Submitted")], backoffs=[state]))
    assert len(d.of_type(StartBackoff)) == 1 and d.of_type(ClearBackoff) == []


def test_vanished_probe_is_released():
    state = BackoffState(CE, "", ago(1000), probe=True, probe_vm="p", probe_started=ago(900))
    assert decide(view([], backoffs=[state])).of_type(ReleaseProbe) == [ReleaseProbe(CE, "")]
    fresh = BackoffState(CE, "", ago(1000), probe=True, probe_vm="p", probe_started=ago(10))
    assert decide(view([], backoffs=[fresh])).actions == []


def test_submission_allowance():
    assert submission_allowance(None, [], NOW) is None
    running = BackoffState(CE, "", NOW + timedelta(seconds=1))
    assert submission_allowance(running, [], NOW) == 0
    probing = BackoffState(CE, "", ago(100))
    assert submission_allowance(probing, [vm("old", age=5000)], NOW) == 1
    assert submission_allowance(probing, [vm("p", VMState.BUILD, age=50)], NOW) == 0
    assert submission_allowance(probing, [vm("p", age=50, launched=ago(40))], NOW, fizzle_seconds=600) == 0
    other_profile = vm("q", VMState.BUILD, age=50, profile="other")
    assert submission_allowance(probing, [other_profile], NOW) == 1


def test_thresholds_refuse_negative_values():
    with pytest.raises(ValueError, match="boot_timeout"):
        Thresholds(boot_timeout=-1)


def test_vm_record_from_database_dict_gets_aware_times():
    naive = datetime(2026, 6, 1, 11, 0)
    rec = VMRecord.from_record(
        {
            "vm_name": "a",
            "ce": CE,
            "created": naive,
            "deleted": None,
            "accounted": 1,
            "shutdown_code": 300,
            "shutdown_message": "no work",
        }
    )
    assert rec.created == naive.replace(tzinfo=UTC) and rec.accounted and rec.shutdown_code == 300
    state = BackoffState.from_record({"ce": CE, "profile": "", "until": naive, "reason": "r", "probe": 0})
    assert state.until.tzinfo is not None and not state.probe


def not_created(name, kind, reason, profile="", accounted=False):
    return VMRecord(name, CE, profile=profile, created=ago(30), deleted=ago(29), accounted=accounted,
                    delete_reason=reason, failure_kind=kind)


def test_create_failure_recorded_by_the_ce_backs_off_once():
    failed = not_created("f", FailureKind.CONFIGURATION, "HTTP 403: Maximum number of metadata items exceeds 128",
                         profile="big")
    quota = not_created("q", FailureKind.QUOTA, "HTTP 403: Quota exceeded for cores: Requested 2")
    d = decide(view([], [], [failed, quota]))
    (backoff,) = d.of_type(StartBackoff)
    assert backoff.profile == "big" and "metadata items" in backoff.reason and "configuration" in backoff.reason
    assert set(d.of_type(Account)) == {Account("f"), Account("q")}  # accounting marks them handled
    handled = not_created("f", FailureKind.CONFIGURATION, "boom", profile="big", accounted=True)
    assert decide(view([], [], [handled])).of_type(StartBackoff) == []


@pytest.mark.parametrize("kind", list(FailureKind))
def test_each_failure_kind_counts_towards_backoff_as_typed(kind):
    # the reason text says "quota" every time: only the kind decides
    record = not_created("f", kind, "HTTP 403: Quota exceeded for instances")
    started = decide(view([], [], [record])).of_type(StartBackoff)
    assert bool(started) == (kind not in (FailureKind.QUOTA, FailureKind.CAPACITY))


def test_deleted_record_without_a_kind_is_not_a_create_failure():
    gone = not_created("g", None, "gone from the cloud")
    assert decide(view([], [], [gone])).of_type(StartBackoff) == []
    assert VMRecord.from_record({"vm_name": "g", "ce": CE, "failure_kind": ""}).failure_kind is None
    assert VMRecord.from_record({"vm_name": "g", "ce": CE, "failure_kind": "quota"}).failure_kind is FailureKind.QUOTA


def test_each_queue_s_lifetime_applies_to_its_vms():
    long_queue = thresholds(max_lifetime=3 * 86400)
    d = decide(view(
        [vm("short", age=2 * 86400, queue="short"), vm("long", age=2 * 86400, queue="long"),
         vm("untagged", age=2 * 86400), vm("gone-queue", age=2 * 86400, queue="removed")],
        [pilot(n) for n in ("short", "long", "untagged", "gone-queue")],
        queues={"short": TH, "long": long_queue},
    ))
    # a VM without a queue (or of a queue the CE no longer has) gets the CE level's lifetime
    assert sorted(deleted_names(d)) == ["gone-queue", "short", "untagged"]


def test_each_queue_s_boot_timeout_applies_to_its_vms():
    patient = thresholds(boot_timeout=7200)
    d = decide(view(
        [vm("a", VMState.BUILD, age=3600, queue="patient"), vm("b", VMState.BUILD, age=3600, queue="default")],
        [pilot("a", "Submitted"), pilot("b", "Submitted")],
        queues={"patient": patient, "default": TH},
    ))
    assert deleted_names(d) == ["b"]
