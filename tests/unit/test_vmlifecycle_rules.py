"""One test (at least) per rule of the VM lifecycle policy."""

from datetime import UTC, datetime, timedelta

import pytest

from JenniferDIRAC.Resources.Cloud.errors import CloudUnreachable, QuotaExceeded
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Utilities.VMBackoff import (
    BackoffState,
    ClearBackoff,
    ReleaseProbe,
    StartBackoff,
    backoff_for_create_failure,
    submission_allowance,
)
from JenniferDIRAC.WorkloadManagementSystem.Utilities.VMLifecycle import (
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
from lifecycle_testkit import CE, thresholds

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OWNER = OwnerTags(installation="inst-a", ce=CE)
TH = thresholds()


def ago(seconds):
    return NOW - timedelta(seconds=seconds)


def vm(name, state=VMState.ACTIVE, age=1000, owner=OWNER, profile="", fault="", updated=None, launched=None):
    tags = OwnerTags(owner.installation, owner.ce, profile=profile) if owner else None
    return VM(
        id="id-" + name,
        name=name,
        state=state,
        created=ago(age),
        updated=updated,
        launched=launched,
        metadata=tags.to_metadata() if tags else {},
        fault=fault,
    )


def pilot(name, status="Running", updated=100, submitted=1000, job_id=0):
    return PilotRecord(pilot_reference(CE, name), status, ago(updated), ago(submitted), job_id)


def view(vms=(), pilots=(), records=(), backoffs=(), sightings=frozenset(), th=TH):
    return CEView(
        owner=OWNER,
        vms=list(vms),
        pilots={p.reference: p for p in pilots},
        records={r.vm_name: r for r in records},
        backoffs={b.profile: b for b in backoffs},
        now=NOW,
        thresholds=th,
        orphan_sightings=frozenset(sightings),
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


def test_error_vm_aborts_pilot_with_the_fault_and_backs_off():
    d = decide(view([vm("a", VMState.ERROR, fault="No valid host was found")], [pilot("a", "Submitted")]))
    assert d.of_type(SetPilotStatus) == [
        SetPilotStatus(pilot_reference(CE, "a"), "Aborted", "cloud error: No valid host was found")
    ]
    assert deleted_names(d) == ["a"]
    (backoff,) = d.of_type(StartBackoff)
    assert backoff.ce == CE and backoff.until == NOW + timedelta(seconds=TH.backoff_seconds)
    assert "No valid host" in backoff.reason


def test_error_vm_for_quota_is_deleted_without_backoff():
    d = decide(
        view([vm("a", VMState.ERROR, fault="Quota exceeded for instances: Requested 1")], [pilot("a")])
    )
    assert deleted_names(d) == ["a"]
    assert d.of_type(StartBackoff) == []


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


def test_create_failure_backs_off_but_quota_is_a_pause():
    assert backoff_for_create_failure(CE, "", QuotaExceeded("full"), NOW, 1800) is None
    start = backoff_for_create_failure(CE, "p", CloudUnreachable("boom"), NOW, 1800)
    assert start == StartBackoff(CE, "p", NOW + timedelta(seconds=1800), "create failed: boom")


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


def test_create_failure_recorded_by_the_ce_backs_off_once():
    failed = VMRecord(
        "f", CE, profile="big", created=ago(30), deleted=ago(29), delete_reason="create failed: boom"
    )
    quota = VMRecord(
        "q",
        CE,
        created=ago(30),
        deleted=ago(29),
        delete_reason="create failed: Quota exceeded for instances: Requested 1",
    )
    d = decide(view([], [], [failed, quota]))
    (backoff,) = d.of_type(StartBackoff)
    assert backoff.profile == "big" and "create failed: boom" in backoff.reason
    assert set(d.of_type(Account)) == {Account("f"), Account("q")}  # accounting marks them handled
    handled = VMRecord(
        "f",
        CE,
        profile="big",
        created=ago(30),
        deleted=ago(29),
        accounted=True,
        delete_reason="create failed: boom",
    )
    assert decide(view([], [], [handled])).of_type(StartBackoff) == []


def test_the_reason_the_ce_records_for_a_failed_create_is_the_one_the_policy_counts():
    from JenniferDIRAC.Resources.Cloud.createfailure import create_failed_reason, is_create_failure

    assert is_create_failure(create_failed_reason("boom"))
    assert not is_create_failure(create_failed_reason("Quota exceeded for instances: Requested 1"))
    assert not is_create_failure("gone from the cloud")
    assert create_failed_reason("x" * 1000) == ("create failed: " + "x" * 1000)[:250]
