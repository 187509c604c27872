"""An uncertain create (sent, never answered, found by no lookup: record CREATE_UNCERTAIN without a
cloud id) that never lands is, once the policy gives up on it after LostPilotGrace, a create
failure of its queue (FailureKind.UNREACHABLE through the queue's state machine); one the listing
shows is adopted and no failure."""

import datetime as dt

from lifecycle_testkit import (CE, EL9_OWNER, NOW, ago, by_reference, cloud_vm, el9_record, pilot_record,
                              thresholds)

from JenniferDIRAC.Resources.Cloud.model import VMState
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import BackoffState, StartBackoff
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    NEVER_LANDED,
    CEView,
    RecordGone,
    SetPilotStatus,
    VMRecord,
    decide,
)

NAME = "jdirac-uncertain"
GRACE = thresholds().lost_pilot_grace
BACKOFF = thresholds().backoff_seconds


def uncertain(age: float, **fields) -> VMRecord:
    return el9_record(NAME, ago(age), cloud_state=CREATE_UNCERTAIN_STATE, **fields)


def judge(record: VMRecord, vms=(), backoffs=None):
    pilots = by_reference([pilot_record(NAME, "Submitted", record.created)])
    return decide(CEView(EL9_OWNER, list(vms), pilots, {NAME: record}, backoffs or {}, NOW, thresholds()))


def test_one_that_never_landed_backs_its_queue_off_when_its_record_is_closed():
    decision = judge(uncertain(GRACE + 1))

    (gone,) = decision.of_type(RecordGone)
    assert gone.vm_name == NAME and gone.reason == "gone from the cloud: " + NEVER_LANDED
    assert decision.of_type(SetPilotStatus)[0].status == "Aborted"
    (start,) = decision.of_type(StartBackoff)
    assert (start.ce, start.profile, start.until) == (CE, "el9", NOW + dt.timedelta(seconds=BACKOFF))
    assert NAME in start.reason and "did not answer" in start.reason


def test_one_within_lost_pilot_grace_is_no_failure_yet():
    decision = judge(uncertain(GRACE - 1))
    assert decision.of_type(RecordGone) == [] and decision.of_type(StartBackoff) == []


def test_one_adopted_by_the_listing_is_no_failure():
    vm = cloud_vm(NAME, VMState.ACTIVE, ago(GRACE + 1), EL9_OWNER, vm_id="id-late", launched=ago(GRACE))
    assert judge(uncertain(GRACE + 1), vms=[vm]).of_type(StartBackoff) == []
    # the next cycle's record carries the adopted VM's id and state: gone later, it is a lost VM
    adopted = el9_record(NAME, ago(GRACE + 1), vm_id="id-late", cloud_state="ACTIVE")
    decision = judge(adopted)
    assert [(a.vm_name, a.reason) for a in decision.of_type(RecordGone)] == [(NAME, "")]
    assert decision.of_type(StartBackoff) == []


def test_a_closed_record_is_counted_once():
    assert judge(uncertain(GRACE + 600, deleted=ago(500), accounted=True)).of_type(StartBackoff) == []


def test_a_create_sent_before_the_running_backoff_began_does_not_extend_it():
    running = BackoffState(CE, "el9", NOW + dt.timedelta(seconds=BACKOFF / 2), "earlier failure", failures=1)
    decision = judge(uncertain(BACKOFF), backoffs={"el9": running})
    assert decision.of_type(RecordGone) and decision.of_type(StartBackoff) == []
    # sent once it began, it does
    assert decision_reasons(judge(uncertain(BACKOFF / 4), backoffs={"el9": running})) == [NAME]


def decision_reasons(decision) -> list[str]:
    return [NAME for a in decision.of_type(StartBackoff) if NAME in a.reason]
