"""The queue's backoff state machine (Lifecycle/StateMachine.py): each event in each phase."""

from datetime import UTC, datetime, timedelta

import pytest

from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import VM, VMState
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (
    BackoffState,
    ClaimProbe,
    ClearBackoff,
    Failure,
    FailuresSeen,
    ProbePassed,
    ProbeVanished,
    QueuePhase,
    ReleaseProbe,
    StartBackoff,
    aware,
    probe_passed,
    probe_vanished,
    queue_phase,
    transition,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CE, PROFILE = "cloud.example.org", "big"


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


BACKING_OFF = BackoffState(CE, PROFILE, at(600), "VM a fizzled", failures=2)
AWAITING = BackoffState(CE, PROFILE, at(-60), "VM a fizzled", failures=2)
PROBING = BackoffState(CE, PROFILE, at(-60), "VM a fizzled", True, "jdirac-p", at(-30), failures=2)


def test_phases():
    assert queue_phase(None, NOW) is QueuePhase.OPEN
    assert queue_phase(BACKING_OFF, NOW) is QueuePhase.BACKING_OFF
    assert queue_phase(AWAITING, NOW) is QueuePhase.AWAITING_PROBE
    assert queue_phase(PROBING, NOW) is QueuePhase.PROBING
    assert BackoffState(CE, PROFILE, NOW).phase(NOW) is QueuePhase.AWAITING_PROBE  # `until` is the first free instant


def test_a_failure_opens_a_backoff_of_backoff_seconds():
    step = transition(None, FailuresSeen(CE, PROFILE, (Failure("VM a in ERROR", at(-10)),), 1800), NOW)
    assert step.effects == (StartBackoff(CE, PROFILE, at(1800), "VM a in ERROR"),)
    assert step.state == BackoffState(CE, PROFILE, at(1800), "VM a in ERROR", failures=1)
    assert queue_phase(step.state, NOW) is QueuePhase.BACKING_OFF


def test_several_failures_make_one_backoff_naming_the_first():
    seen = FailuresSeen(CE, PROFILE, (Failure("first", None), Failure("second", None), Failure("third", None)), 60)
    (start,) = transition(None, seen, NOW).effects
    assert start.reason == "first (and 2 more)"


@pytest.mark.parametrize("kind", list(FailureKind))
def test_only_the_kind_decides_whether_a_cloud_failure_counts(kind):
    step = transition(None, FailuresSeen(CE, PROFILE, (Failure("quota exceeded", None, kind),), 60), NOW)
    assert bool(step.effects) is kind.counts_towards_backoff
    if not step.effects:
        assert step.state is None and step.refused


def test_failures_of_vms_born_before_the_running_backoff_began_do_not_extend_it():
    # BACKING_OFF ends in 600 s: with 1800 s backoffs it began 1200 s ago
    older = Failure("old", at(-1300))
    newer = Failure("new", at(-1100))
    assert transition(BACKING_OFF, FailuresSeen(CE, PROFILE, (older,), 1800), NOW).effects == ()
    assert len(transition(BACKING_OFF, FailuresSeen(CE, PROFILE, (older, newer), 1800), NOW).effects) == 1
    # the failing VM's own queue may back off for longer: its length decides its age test
    long_queue = Failure("old", at(-1300), backoff_seconds=3600)
    assert len(transition(BACKING_OFF, FailuresSeen(CE, PROFILE, (long_queue,), 1800), NOW).effects) == 1


def test_a_recorded_backoff_never_moves_its_end_back_and_counts_every_failure():
    earlier = transition(BACKING_OFF, StartBackoff(CE, PROFILE, at(100), "create failed"), NOW).state
    assert (earlier.until, earlier.reason, earlier.failures) == (at(600), "VM a fizzled", 3)
    later = transition(BACKING_OFF, StartBackoff(CE, PROFILE, at(900), "VM b in ERROR"), NOW).state
    assert (later.until, later.reason, later.failures) == (at(900), "VM b in ERROR", 3)


def test_a_probe_that_fizzles_restarts_the_backoff_and_keeps_its_name():
    step = transition(PROBING, FailuresSeen(CE, PROFILE, (Failure("VM jdirac-p fizzled", at(-20)),), 1800), NOW)
    assert queue_phase(step.state, NOW) is QueuePhase.BACKING_OFF
    assert not step.state.probe and step.state.probe_vm == "jdirac-p"  # still told apart from older VMs


@pytest.mark.parametrize(
    "state,refusal",
    [(None, "no backoff"), (BACKING_OFF, "still backing off"), (PROBING, "another probe VM is running")],
)
def test_a_probe_is_claimed_only_once_the_backoff_ended_and_none_runs(state, refusal):
    step = transition(state, ClaimProbe(CE, PROFILE, "jdirac-q"), NOW)
    assert step.state == state and refusal in step.refused and step.effects == ()


def test_claiming_the_probe():
    step = transition(AWAITING, ClaimProbe(CE, PROFILE, "jdirac-q"), NOW)
    assert step.refused == ""
    assert (step.state.probe, step.state.probe_vm, step.state.probe_started) == (True, "jdirac-q", NOW)
    assert queue_phase(step.state, NOW) is QueuePhase.PROBING


def test_release_and_clear():
    released = transition(PROBING, ReleaseProbe(CE, PROFILE), NOW).state
    assert queue_phase(released, NOW) is QueuePhase.AWAITING_PROBE and released.probe_vm == ""
    assert transition(None, ReleaseProbe(CE, PROFILE), NOW).state is None
    assert transition(PROBING, ClearBackoff(CE, PROFILE), NOW).state is None


def test_observed_probe_outcomes_become_commands():
    assert transition(PROBING, ProbePassed(CE, PROFILE), NOW).effects == (ClearBackoff(CE, PROFILE),)
    assert transition(AWAITING, ProbePassed(CE, PROFILE), NOW).effects == (ClearBackoff(CE, PROFILE),)
    assert transition(BACKING_OFF, ProbePassed(CE, PROFILE), NOW).effects == ()  # no probe may have run yet
    vanished = transition(PROBING, ProbeVanished(CE, PROFILE), NOW)
    assert vanished.effects == (ReleaseProbe(CE, PROFILE),) and not vanished.state.probe
    assert transition(AWAITING, ProbeVanished(CE, PROFILE), NOW).effects == ()


def test_what_makes_a_probe_pass_or_vanish():
    def vm(state, born, launched=None, updated=None):
        return VM(id="i", name="jdirac-p", state=state, created=born, launched=launched, updated=updated)

    ended = BackoffState(CE, PROFILE, at(-800))
    assert probe_passed(vm(VMState.ACTIVE, at(-700), at(-650)), at(-700), ended, NOW, 600)
    assert not probe_passed(vm(VMState.ACTIVE, at(-700), at(-500)), at(-700), ended, NOW, 600)
    assert not probe_passed(vm(VMState.ACTIVE, at(-900), at(-890)), at(-900), ended, NOW, 60)  # born before `until`
    assert probe_passed(vm(VMState.SHUTOFF, at(-50), at(-50), at(-5)), at(-50), ended, NOW, 40)
    assert not probe_passed(vm(VMState.BUILD, at(-50)), at(-50), ended, NOW, 0)
    assert probe_vanished(PROBING, set(), NOW, grace=20)
    assert not probe_vanished(PROBING, {"jdirac-p"}, NOW, grace=20)
    assert not probe_vanished(PROBING, set(), NOW, grace=60)  # may still appear
    assert not probe_vanished(AWAITING, set(), NOW, grace=0)


def test_from_record_and_aware():
    naive = datetime(2026, 6, 1, 11, 0)
    state = BackoffState.from_record({"ce": CE, "until": naive, "probe": 1, "failures": 4})
    assert state.until == naive.replace(tzinfo=UTC) and state.probe and state.failures == 4
    assert aware(None) is None and aware(NOW) is NOW


def test_an_unknown_event_is_refused():
    with pytest.raises(TypeError, match="not a queue event"):
        transition(None, "StartBackoff", NOW)
