"""The lifecycle policy of cloud VMs, as pure functions: what is seen -> what to do.

`decide(view)` takes one CE's view of the world (ONE cloud listing of the VMs this installation
owns on the CE, the pilot records and VM records that match them, the backoff state, the
thresholds and the time) and returns the actions the VMDirector agent must apply. Nothing here
does I/O, so every rule is tested without a cloud or a database.

Pilot statuses chosen when the director ends a pilot (DIRAC's PilotStatus values):

- VM SHUTOFF after its bootstrap fetch failed (shutdown code BOOTSTRAP_FAILED_CODE, sent with
  the bootstrap token before any heartbeat): no pilot ran -> Aborted, a failed boot of the queue.
  So is a VM created with a contextualization endpoint (it has a bootstrap in VMDB) that ended
  without saying so: powered off or gone with its bootstrap never fetched (the endpoint was out
  of its reach), or fetched but with no heartbeat, no shutdown message and no job matched (it
  failed after the fetch and could not report); and one still running BootTimeout after its
  creation that never fetched it. A VM without a bootstrap (its wrapper in user data) is judged
  as before.
- VM SHUTOFF: the pilot ended and powered the VM off -> Done (Failed for a shutdown code
  >= 400, which the VM reports as a problem it detected).
- VM ERROR, or stuck in BUILD: the pilot never ran -> Aborted (what the SiteDirector counts as
  a submission failure of the queue).
- past its maximum lifetime: the director kills a running pilot -> Deleted.
- heartbeat lost: the VM stopped talking while it ran -> Failed.
- two VMs listed under one name (twins: a create the cloud completed after the CE had given up
  and created again): the one whose cloud id VMDB recorded (else the oldest) is the pilot's,
  the others are deleted with reason "twin" and change neither the pilot nor the VM record.
- VM gone without the director deleting it (lost pilot): a pilot that never left the waiting
  states never ran -> Aborted; one that was Running (or Unknown) was removed under its feet,
  which DIRAC calls Deleted (not Aborted, so the queue is not penalised for someone else's act).
- an uncertain create (CREATE_UNCERTAIN, no cloud id) never listed within LostPilotGrace: its
  pilot is Aborted as a lost one, and the cloud took a create it neither answered nor carried
  out -> a create failure of the queue (FailureKind.UNREACHABLE). One listed is adopted, no failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import VM, VMState
from JenniferDIRAC.Resources.Cloud.references import parse_reference, pilot_reference

# The policy's types live in CEView and StateMachine; the agents and the CE import them from here too.
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.CEView import (  # noqa: F401
    DEFAULT_LOST_PILOT_GRACE,
    Account,
    Action,
    BootstrapRecord,
    CEView,
    Decision,
    DeleteVM,
    PilotRecord,
    RecordGone,
    SetPilotStatus,
    Thresholds,
    VMRecord,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (  # noqa: F401
    ABORTED,
    DELETED,
    DONE,
    FAILED,
    PILOT_FINAL,
    PILOT_TRANSIENT,
    PILOT_WAITING,
    VM_ENDS,
    Failure,
    FailuresSeen,
    ProbePassed,
    ProbeVanished,
    VMEnd,
    probe_passed,
    probe_vanished,
    transition,
)

#: Shutdown codes (VCYCLE / Machine-Job-Features convention) that mean the VM gave up early.
FIZZLE_CODES = range(300, 700)

#: The shutdown code (5xx: a problem with the contextualization the site provided) of a VM that
#: could not fetch its bootstrap; the only one the endpoint accepts under a bootstrap token.
BOOTSTRAP_FAILED_CODE = 510

#: Deletion reason of the extra VMs of one name.
TWIN = VMEnd.TWIN.value


# --- the rules -------------------------------------------------------------------------------
def _seconds(later: datetime, earlier: datetime | None) -> float:
    return 0.0 if earlier is None else (later - earlier).total_seconds()


def still_appearing(born: datetime | None, now: datetime, grace: float = DEFAULT_LOST_PILOT_GRACE) -> bool:
    """True while a VM created (or recorded) at `born` may be absent from a listing without
    being gone (None, an unknown time, counts as just created)."""
    return born is None or _seconds(now, born) <= grace


#: failed_boot's reasons (for people), and what each adds to its queue's backoff reason
NEVER_FETCHED = "bootstrap never fetched, no pilot ran"
FETCHED_SILENT = "bootstrap fetched but the VM never reported, no pilot ran"
_BACKOFF_REASONS = {
    NEVER_FETCHED: "could not fetch its bootstrap (never fetched)",
    FETCHED_SILENT: "fetched its bootstrap but never reported",
}


def failed_boot(record: VMRecord | None, pilot: PilotRecord | None, bootstrap: BootstrapRecord | None) -> str:
    """Why an ended VM ran no pilot because its bootstrap failed, without being able to say so
    ("" when it did not fail so, or was not created with a bootstrap)."""
    if bootstrap is None or record is None:
        return ""
    # The boot script heartbeats, and reports with its report token, only once it fetched.
    if record.last_heartbeat is not None:
        return ""
    if record.shutdown_code is not None and record.shutdown_code != BOOTSTRAP_FAILED_CODE:
        return ""
    if bootstrap.fetched is None:
        return NEVER_FETCHED
    if pilot is not None and pilot.job_id > 0:
        return ""  # its heartbeats were lost, not its pilot (the CE's Running is only the VM's state)
    return FETCHED_SILENT


#: why an uncertain create's record is closed (and its queue backs off)
NEVER_LANDED = "never appeared after a create the cloud did not answer"


def _failed_boot_failure(vm_name: str, why: str) -> str:
    """The queue's backoff reason of a failed boot `why` (one of failed_boot's reasons)."""
    return f"VM {vm_name} {_BACKOFF_REASONS[why]}"


@dataclass
class _Ending:
    """Why and how the director ends one VM's life."""

    end: VMEnd
    reason: str  # for people
    ended: datetime | None = None
    failure: str = ""  # the VM failed: the reason its queue backs off, "" for none
    failure_kind: FailureKind | None = None  # a cloud fault's kind (None: the VM's own failure)
    pilot_status: str | None = None  # None: the status VM_ENDS gives this end

    def __post_init__(self):
        if self.pilot_status is None:
            self.pilot_status = VM_ENDS[self.end].pilot_status

    def sets_status_of(self, pilot: PilotRecord) -> bool:
        """Whether this end sets `pilot`'s status: a transient one; and, for a failed boot, a
        Done one without a job (the CE's status for a powered-off VM, set by the SiteDirector's
        getJobStatus before this cycle; no pilot ran)."""
        if not self.pilot_status:
            return False
        if pilot.status in PILOT_TRANSIENT:
            return True
        return self.end is VMEnd.BOOTSTRAP_FAILED and pilot.status == DONE and pilot.job_id == 0


def _born(vm: VM, record: VMRecord | None) -> datetime | None:
    return vm.created or (record.created if record else None)


def _ending_of(
    vm: VM, pilot: PilotRecord | None, record: VMRecord | None, view: CEView, th: Thresholds | None = None
) -> _Ending | None:
    """How `vm`'s life ends this cycle, None while it goes on (`th`: view.thresholds_of(vm))."""
    now = view.now
    th = th if th is not None else view.thresholds_of(vm)
    born = _born(vm, record)
    age = _seconds(now, born)

    if vm.state is VMState.DELETING:
        if _seconds(now, vm.updated or born) > th.deleting_timeout:
            return _Ending(VMEnd.DELETE_STUCK, f"still deleting after {th.deleting_timeout:.0f} s")
        return None

    if vm.name in view.bootstrap_replayed:
        return _Ending(VMEnd.BOOTSTRAP_REPLAYED, "bootstrap replayed", now)

    if vm.state is VMState.SHUTOFF:
        ended = vm.updated or now
        started = vm.launched or born
        lived = _seconds(ended, started)
        code = record.shutdown_code if record else None
        # The boot script heartbeats only once it holds the report token: a 510 after a heartbeat
        # is not the boot script's (someone with the bootstrap token), an ordinary 5xx below.
        if code == BOOTSTRAP_FAILED_CODE and record.last_heartbeat is None:
            return _Ending(
                VMEnd.BOOTSTRAP_FAILED,
                f"bootstrap fetch failed, no pilot ran (shutdown code {code}: {record.shutdown_text})",
                ended,
                f"VM {vm.name} could not fetch its bootstrap",
            )
        why = failed_boot(record, pilot, view.bootstraps.get(vm.name))
        if why:
            return _Ending(VMEnd.BOOTSTRAP_FAILED, f"{why} (VM powered off without a word)", ended,
                           _failed_boot_failure(vm.name, why))
        status = FAILED if code is not None and code >= 400 else None  # None: DONE, from VM_ENDS
        reason = "VM powered off" + (
            f" (shutdown code {code}: {record.shutdown_text})" if code is not None else ""
        )
        failure = ""
        if code is not None and code in FIZZLE_CODES:
            failure = f"VM {vm.name} ended with shutdown code {code}"
        elif lived < th.fizzle_seconds and not (pilot and pilot.ran_job):
            failure = f"VM {vm.name} fizzled after {lived:.0f} s without running a job"
        return _Ending(VMEnd.POWERED_OFF, reason, ended, failure, pilot_status=status)

    if vm.state is VMState.ERROR:
        fault = vm.fault or "no fault given by the cloud"
        # Nova may accept a burst of creates and fail the extra VMs with a quota fault (413), or
        # find no host: the cloud is full, a pause the state machine does not count
        kind = vm.fault_kind or FailureKind.CLOUD_FAULT
        return _Ending(VMEnd.CLOUD_ERROR, f"cloud error: {fault}", vm.updated or now, f"VM {vm.name} in ERROR: {fault}", kind)

    if vm.state is VMState.BUILD and age > th.boot_timeout:
        return _Ending(
            VMEnd.NEVER_BOOTED, f"not booted within {th.boot_timeout:.0f} s", now, f"VM {vm.name} never booted"
        )

    bootstrap = view.bootstraps.get(vm.name)
    if vm.state is VMState.ACTIVE and age > th.boot_timeout and bootstrap and bootstrap.fetched is None:
        # no wrapper ever left VMDB: no pilot can be running in it
        return _Ending(
            VMEnd.BOOTSTRAP_FAILED, f"bootstrap not fetched within {th.boot_timeout:.0f} s, no pilot ran", now,
            _failed_boot_failure(vm.name, NEVER_FETCHED),
        )

    if age > th.max_lifetime:
        return _Ending(VMEnd.PAST_LIFETIME, f"past its maximum lifetime of {th.max_lifetime:.0f} s", now)

    if pilot is not None and pilot.status in PILOT_FINAL:
        if _seconds(now, pilot.last_update) > th.zombie_grace:
            return _Ending(VMEnd.PILOT_OVER, f"zombie: pilot {pilot.status} for more than {th.zombie_grace:.0f} s", now)
        return None

    if (
        vm.state is VMState.ACTIVE
        and th.heartbeat_timeout > 0
        and record is not None
        and record.last_heartbeat is not None
        and _seconds(now, record.last_heartbeat) > th.heartbeat_timeout
    ):
        return _Ending(VMEnd.HEARTBEAT_LOST, f"no heartbeat for more than {th.heartbeat_timeout:.0f} s", now)

    return None


def split_twins(vms: Sequence[VM], records: Mapping[str, VMRecord]) -> tuple[list[VM], list[VM]]:
    """(the VMs that stand for their name, in listing order; the extra VMs of a name). Of VMs
    sharing a name the one whose id VMDB recorded is kept, else the oldest (ties: lowest id)."""
    if len({vm.name for vm in vms}) == len(vms):
        return list(vms), []  # no name twice (every cycle but the rare one with a twin)
    groups: dict[str, list[VM]] = {}
    for vm in vms:
        groups.setdefault(vm.name, []).append(vm)
    keep: dict[str, VM] = {}
    for name, group in groups.items():
        recorded = records[name].vm_id if name in records else ""
        by_id = [vm for vm in group if recorded and vm.id == recorded]
        keep[name] = by_id[0] if by_id else min(group, key=_age_order)
    kept = [vm for vm in vms if keep[vm.name] is vm]
    return kept, [vm for vm in vms if keep[vm.name] is not vm]


def _age_order(vm: VM) -> tuple:
    return (vm.created is None, vm.created or datetime.min, vm.id)


def _twin_deletes(twins: Sequence[VM], view: CEView) -> list[Action]:
    actions: list[Action] = []
    for vm in twins:
        if vm.state is VMState.DELETING and _seconds(view.now, vm.updated or vm.created) <= (
            view.thresholds_of(vm).deleting_timeout
        ):
            continue  # its delete was accepted already
        actions.append(DeleteVM(vm.id, vm.name, TWIN, view.now, twin=True, end=VMEnd.TWIN))
    return actions


def decide(view: CEView) -> Decision:
    """The actions for one CE in one cycle."""
    now, ce = view.now, view.owner.ce
    actions: list[Action] = []
    sightings: set[str] = set()
    failures: dict[str, list[Failure]] = {}  # by profile, in the order they were seen
    listed = set()
    listed_references = set()  # of the listed VMs' pilots: no lost pilot among them

    # never touch another installation's or another CE's VM
    owned, owners = [], []  # and each one's owner, read once
    for vm in view.vms:
        owner = vm.owner
        if view.owner.owns(owner):
            owned.append(vm)
            owners.append(owner)
    kept, twins = split_twins(owned, view.records)
    actions.extend(_twin_deletes(twins, view))
    if twins:
        owners = [vm.owner for vm in kept]
    for vm, owner in zip(kept, owners):
        listed.add(vm.name)
        ref = pilot_reference(ce, vm.name)
        if ":::" not in ref and "\n" not in ref:  # what parse_reference reads back as (ce, vm.name)
            listed_references.add(ref)
        pilot = view.pilots.get(ref)
        record = view.records.get(vm.name)
        th = view.thresholds_of_queue(owner.queue)
        ending = _ending_of(vm, pilot, record, view, th)

        if ending is None and pilot is None and vm.state is not VMState.DELETING:
            sightings.add(vm.name)
            grace = th.orphan_grace
            if vm.name in view.orphan_sightings and _seconds(now, _born(vm, record)) > grace:
                ending = _Ending(VMEnd.ORPHAN, f"orphan: no pilot record for more than {grace:.0f} s", now)
        if ending is None:
            continue

        after_pilot = ""
        if pilot is not None and ending.sets_status_of(pilot):
            actions.append(SetPilotStatus(ref, ending.pilot_status, ending.reason))
            after_pilot = ref
        ended = ending.ended or now
        actions.append(DeleteVM(vm.id, vm.name, ending.reason, ended, after_pilot, end=ending.end))
        if vm.state is not VMState.DELETING and not (record and record.accounted):
            actions.append(Account(vm.name, after_delete=True))
        if ending.failure:
            failures.setdefault(owner.profile, []).append(
                Failure(ending.failure, _born(vm, record), ending.failure_kind, th.backoff_seconds)
            )

    # the CE's records whose VM is not listed (a steady cycle's few), by name
    unlisted = dict(sorted(item for item in view.records.items() if item[0] not in listed and item[1].ce == ce))
    gone_failed = _gone_failed_boots(view, unlisted)
    never_landed = _never_landed(view, unlisted)
    actions.extend(_lost_pilots(view, listed, gone_failed, listed_references))
    why_gone = {**gone_failed, **{record.vm_name: NEVER_LANDED for record in never_landed}}
    actions.extend(_gone_records(view, unlisted, why_gone))
    for name, why in sorted(gone_failed.items()):
        record = view.records[name]
        failures.setdefault(record.profile, []).append(
            Failure(_failed_boot_failure(name, why), record.created, None, view.thresholds.backoff_seconds)
        )
    for record in never_landed:
        failures.setdefault(record.profile, []).append(
            Failure(
                f"VM {record.vm_name} {NEVER_LANDED}",
                record.created,
                FailureKind.UNREACHABLE,
                view.thresholds.backoff_seconds,
            )
        )
    for record in _create_failures(unlisted):
        failures.setdefault(record.profile, []).append(
            Failure(
                f"VM {record.vm_name} not created ({record.failure_kind.value}): {record.delete_reason}",
                record.created,
                record.failure_kind,
            )
        )
    actions.extend(_queue_effects(view, failures, owned, listed))
    return Decision(actions, frozenset(sightings))


def _gone_failed_boots(view: CEView, unlisted: Mapping[str, VMRecord]) -> dict[str, str]:
    """{VM name: failed_boot's reason} of this CE's VMs gone on their own (not deleted by the
    director or the CE) after a failed bootstrap; `unlisted`: the CE's records of VMs not listed."""
    gone = {}
    for name, record in unlisted.items():
        if record.deleted is not None:
            continue
        # no cloud id: the cloud never had it (an uncertain create that never landed), no boot failed
        if not record.vm_id or still_appearing(record.created, view.now, view.thresholds.lost_pilot_grace):
            continue
        why = failed_boot(record, view.pilots.get(pilot_reference(view.owner.ce, name)), view.bootstraps.get(name))
        if why:
            gone[name] = why
    return gone


def _lost_pilots(
    view: CEView, listed: set[str], failed_boots: Mapping[str, str], listed_references: set[str] = frozenset()
) -> list[Action]:
    """`listed_references`: references that parse_reference reads back as the CE and a listed
    VM's name (skipped without parsing them)."""
    actions: list[Action] = []
    for ref, pilot in sorted(item for item in view.pilots.items() if item[0] not in listed_references):
        try:
            ce, vm_name = parse_reference(ref)
        except ValueError:
            continue
        if ce != view.owner.ce or vm_name in listed:
            continue
        # Deleted without a job is the CE's status for a VM gone from its listing: a guess
        guessed = vm_name in failed_boots and pilot.status == DELETED and pilot.job_id == 0
        if pilot.status not in PILOT_TRANSIENT and not guessed:
            continue
        # A pilot recorded just now may belong to a VM created after the listing was taken.
        born = pilot.submitted or pilot.last_update
        if still_appearing(born, view.now, view.thresholds.lost_pilot_grace):
            continue
        if vm_name in failed_boots:  # Running or Deleted were only the CE's words for the VM's state
            actions.append(SetPilotStatus(ref, ABORTED, f"VM gone from the cloud: {failed_boots[vm_name]}"))
            continue
        status = ABORTED if pilot.status in PILOT_WAITING else DELETED
        actions.append(SetPilotStatus(ref, status, "VM gone from the cloud"))
    return actions


def _gone_records(view: CEView, unlisted: Mapping[str, VMRecord], failed_boots: Mapping[str, str]) -> list[Action]:
    """VM records of this CE whose VM is no longer listed (`unlisted`, by name in order): close
    them (with the reason `failed_boots` gives, if any) and account them."""
    actions: list[Action] = []
    for name, record in unlisted.items():
        if record.deleted is None:
            # The record is written before the VM is created: give creation time to finish.
            if still_appearing(record.created, view.now, view.thresholds.lost_pilot_grace):
                continue
            why = failed_boots.get(name)
            actions.append(RecordGone(name, view.now, f"gone from the cloud: {why}" if why else ""))
            if not record.accounted:
                actions.append(Account(name, after_delete=True))
        elif not record.accounted:
            actions.append(Account(name))
    return actions


def _never_landed(view: CEView, unlisted: Mapping[str, VMRecord]) -> list[VMRecord]:
    """Records of this CE's uncertain creates (CREATE_UNCERTAIN, no cloud id) still unlisted
    after LostPilotGrace, which this cycle closes (RecordGone): the cloud took a create it never
    answered nor carried out, a create failure of the queue. One the listing showed (adopted)
    has its cloud id and state and is no longer uncertain."""
    return [
        record
        for record in unlisted.values()
        if record.deleted is None
        and record.create_uncertain
        and not still_appearing(record.created, view.now, view.thresholds.lost_pilot_grace)
    ]


def _create_failures(unlisted: Mapping[str, VMRecord]) -> list[VMRecord]:
    """Records of VMs the CE failed to create (closed with a FailureKind), not yet accounted (so
    each is seen once); whether each counts towards backoff is the state machine's call."""
    return [
        record
        for record in unlisted.values()
        if not record.accounted
        and record.deleted is not None
        and record.failure_kind is not None
    ]


def _queue_effects(
    view: CEView, failures: dict[str, list[Failure]], owned: Sequence[VM], listed: set[str]
) -> list[Action]:
    """The queues' state machine fed with this cycle's observations: failures first, then (for
    the queues whose backoff ended and did not restart) the probe's fate. `owned`: the listed
    VMs of this installation and CE, `listed` their names."""
    now, th, ce = view.now, view.thresholds, view.owner.ce
    actions: list[Action] = []
    restarted = set()
    for profile, seen in sorted(failures.items()):
        step = transition(view.backoffs.get(profile), FailuresSeen(ce, profile, tuple(seen), th.backoff_seconds), now)
        if step.effects:
            restarted.add(profile)
            actions.extend(step.effects)
    for profile, state in sorted(view.backoffs.items()):
        if profile in restarted or state.in_backoff(now):
            continue
        if any(
            probe_passed(vm, _born(vm, view.records.get(vm.name)), state, now, th.fizzle_seconds)
            for vm in owned
            if vm.owner.profile == profile
        ):
            actions.extend(transition(state, ProbePassed(ce, profile), now).effects)
        elif probe_vanished(state, listed, now, th.lost_pilot_grace):
            actions.extend(transition(state, ProbeVanished(ce, profile), now).effects)
    return actions
