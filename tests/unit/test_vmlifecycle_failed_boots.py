"""A VM created with a contextualization endpoint that ended without a word about its bootstrap is
a failed boot (VMEnd.BOOTSTRAP_FAILED: pilot Aborted, VM deleted, the queue backs off), judged
from what VMDB knows: whether its bootstrap was ever fetched, whether it ever heartbeated or sent
a shutdown message. Each case is set beside the same VM without a bootstrap (its wrapper in user
data, the old way), which is judged as before."""

import pytest
from lifecycle_testkit import (CE, EL9_OWNER, NOW, ago, by_reference, cloud_vm, el9_record, pilot_record,
                              thresholds)

from JenniferDIRAC.Resources.Cloud.model import VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import StartBackoff, VMEnd
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    BootstrapRecord,
    CEView,
    DeleteVM,
    RecordGone,
    SetPilotStatus,
    decide,
)

NAME = "jdirac-bootfail"
REF = pilot_reference(CE, NAME)


def judge(state=VMState.SHUTOFF, listed=True, age=1200, lived=900, fetched="never", heartbeat=None, code=None,
          pilot_status="Submitted", job_id=0, replayed=False, bootstrap=True, vm_id="id-1"):
    """decide() for one VM of `age` seconds (`lived` from its creation to its power-off)."""
    vm = cloud_vm(NAME, state, ago(age), EL9_OWNER, vm_id="id-1", launched=ago(age),
                  updated=ago(age - lived) if state is VMState.SHUTOFF else ago(age))
    record = el9_record(NAME, ago(age), vm_id, last_heartbeat=heartbeat, shutdown_code=code,
                        shutdown_text="" if code is None else "bootstrap fetch failed")
    pilots = by_reference([pilot_record(NAME, pilot_status, ago(age), job_id=job_id)] if pilot_status else [])
    bootstraps = {}
    if bootstrap:
        bootstraps[NAME] = BootstrapRecord(NAME, None if fetched == "never" else fetched)
    view = CEView(EL9_OWNER, [vm] if listed else [], pilots, {NAME: record}, {}, NOW, thresholds(),
                  bootstrap_replayed=frozenset({NAME}) if replayed else frozenset(), bootstraps=bootstraps)
    return decide(view)


def pilot_status(decision):
    return {a.reference: (a.status, a.reason) for a in decision.of_type(SetPilotStatus)}.get(REF)


def end(decision):
    deletes = decision.of_type(DeleteVM)
    return deletes[0].end if deletes else None


def backoff(decision):
    starts = decision.of_type(StartBackoff)
    return starts[0].reason if starts else ""


# --- (a) the endpoint was out of the VM's reach: never fetched, powered off without a word --------
def test_powered_off_never_fetched_is_a_failed_boot():
    decision = judge(fetched="never")
    assert end(decision) is VMEnd.BOOTSTRAP_FAILED
    status, reason = pilot_status(decision)
    assert status == "Aborted" and "bootstrap never fetched, no pilot ran" in reason
    assert decision.of_type(DeleteVM)[0].reason == reason
    assert "could not fetch its bootstrap" in backoff(decision) and NAME in backoff(decision)


def test_powered_off_without_a_bootstrap_is_judged_as_before():
    """No bootstrap row (no contextualization endpoint): an ordinary power-off, Done, no backoff."""
    decision = judge(bootstrap=False)
    assert end(decision) is VMEnd.POWERED_OFF
    assert pilot_status(decision)[0] == "Done"
    assert backoff(decision) == ""


# --- (b) fetched (the claim won), then the VM failed and could not report ---------------------------
def test_fetched_then_silent_is_a_failed_boot():
    decision = judge(fetched=ago(1190))
    assert end(decision) is VMEnd.BOOTSTRAP_FAILED
    status, reason = pilot_status(decision)
    assert status == "Aborted" and "bootstrap fetched but the VM never reported" in reason
    assert "fetched its bootstrap but never reported" in backoff(decision)


@pytest.mark.parametrize(
    "what, facts",
    [
        ("it heartbeated", {"heartbeat": ago(1100)}),
        ("it sent a shutdown message with its report token", {"code": 200}),
        ("its pilot matched a job", {"job_id": 42, "pilot_status": "Running"}),
    ],
)
def test_fetched_and_then_a_sign_of_life_is_an_ordinary_power_off(what, facts):
    decision = judge(fetched=ago(1190), **facts)
    assert end(decision) is VMEnd.POWERED_OFF, what
    assert pilot_status(decision) is None or pilot_status(decision)[0] in ("Done", "Failed"), what
    assert backoff(decision) == "", what


def test_the_ces_running_is_no_sign_of_life():
    """The CE maps an ACTIVE VM to a Running pilot: that says nothing about a pilot having run."""
    decision = judge(fetched=ago(1190), pilot_status="Running")
    assert end(decision) is VMEnd.BOOTSTRAP_FAILED
    assert pilot_status(decision)[0] == "Aborted"


def test_a_510_is_still_a_failed_fetch_and_a_replay_still_deletes():
    decision = judge(code=510)
    assert end(decision) is VMEnd.BOOTSTRAP_FAILED
    assert "bootstrap fetch failed" in pilot_status(decision)[1]
    replayed = judge(state=VMState.ACTIVE, age=60, fetched=ago(50), heartbeat=ago(40), replayed=True)
    assert end(replayed) is VMEnd.BOOTSTRAP_REPLAYED
    assert pilot_status(replayed) == ("Failed", "bootstrap replayed")


# --- still running ------------------------------------------------------------------------------------
def test_a_vm_running_within_boot_timeout_is_left_alone_and_after_it_not():
    booting = judge(state=VMState.ACTIVE, age=500)
    assert booting.of_type(DeleteVM) == [] and pilot_status(booting) is None and backoff(booting) == ""

    late = judge(state=VMState.ACTIVE, age=700, pilot_status="Running")
    assert end(late) is VMEnd.BOOTSTRAP_FAILED
    status, reason = pilot_status(late)
    assert status == "Aborted" and "bootstrap not fetched within 600 s" in reason
    assert "could not fetch its bootstrap" in backoff(late)


@pytest.mark.parametrize("facts", [{"bootstrap": False}, {"fetched": ago(650)}], ids=["no bootstrap", "fetched"])
def test_a_vm_running_past_boot_timeout_that_fetched_or_has_no_bootstrap_is_left_alone(facts):
    decision = judge(state=VMState.ACTIVE, age=700, pilot_status="Running", **facts)
    assert decision.of_type(DeleteVM) == [] and pilot_status(decision) is None and backoff(decision) == ""


# --- gone on its own (e.g. an EC2 VM whose power-off terminates it) ----------------------------------
def test_a_vm_gone_without_fetching_is_a_failed_boot():
    decision = judge(listed=False, pilot_status="Running")
    status, reason = pilot_status(decision)
    assert status == "Aborted" and "bootstrap never fetched" in reason
    (gone,) = decision.of_type(RecordGone)
    assert gone.vm_name == NAME and "bootstrap never fetched" in gone.reason
    assert "could not fetch its bootstrap" in backoff(decision)


def test_a_vm_gone_without_a_bootstrap_is_judged_as_before():
    decision = judge(listed=False, pilot_status="Running", bootstrap=False)
    assert pilot_status(decision) == ("Deleted", "VM gone from the cloud")
    (gone,) = decision.of_type(RecordGone)
    assert gone.reason == ""
    assert backoff(decision) == ""


def test_a_vm_gone_just_after_its_creation_is_not_judged_yet():
    decision = judge(listed=False, age=60)
    assert decision.of_type(RecordGone) == [] and pilot_status(decision) is None and backoff(decision) == ""


# --- the SiteDirector came first ------------------------------------------------------------------
def test_a_done_without_a_job_that_the_ce_gave_a_failed_boot_becomes_aborted():
    """The SiteDirector's getJobStatus maps a SHUTOFF VM to Done, maybe before this cycle: for a
    failed boot that is a guess the director corrects; other ends leave a final pilot alone."""
    decision = judge(fetched="never", pilot_status="Done")
    status, reason = pilot_status(decision)
    assert status == "Aborted" and "bootstrap never fetched" in reason
    assert decision.of_type(DeleteVM)[0].after_pilot == REF
    assert pilot_status(judge(code=510, pilot_status="Done"))[0] == "Aborted"

    assert pilot_status(judge(fetched="never", pilot_status="Done", bootstrap=False)) is None
    assert pilot_status(judge(fetched="never", pilot_status="Failed")) is None  # a failure already
    assert end(judge(fetched=ago(1190), pilot_status="Done", job_id=7)) is VMEnd.POWERED_OFF
    assert pilot_status(judge(fetched=ago(1190), pilot_status="Done", job_id=7)) is None


def test_a_deleted_without_a_job_that_the_ce_gave_a_gone_failed_boot_becomes_aborted():
    """The CE's getJobStatus says Deleted for a VM gone from its listing."""
    status, reason = pilot_status(judge(listed=False, pilot_status="Deleted"))
    assert status == "Aborted" and "bootstrap never fetched" in reason
    assert pilot_status(judge(listed=False, pilot_status="Deleted", bootstrap=False)) is None
    assert pilot_status(judge(listed=False, pilot_status="Deleted", fetched=ago(1190), job_id=3)) is None


def test_a_create_that_never_landed_is_no_failed_boot():
    """A record without a cloud id (the CE's create went unanswered and no listing ever showed
    the VM): the cloud never had it, so no boot failed; its pilot ends as a lost one."""
    decision = judge(listed=False, vm_id="")
    assert pilot_status(decision) == ("Aborted", "VM gone from the cloud")
    assert decision.of_type(RecordGone)[0].reason == ""
    assert backoff(decision) == ""
