"""The VM lifecycle as explicit state machines, in pure Python: a queue's backoff and probe, and
how a VM's life ends. Every rule of "what state comes next" is here; the adapters only carry
events in and store or apply what comes out:

- the CE (Resources/Computing/CloudComputingElement.py) asks ``submission_allowance`` how many
  VMs it may start, and claims the probe (``ClaimProbe``, through VMDB);
- the VMDirector (Agent/VMDirector.py, through ``VMLifecycle.decide``) observes failures and
  probes in its listing (``FailuresSeen``, ``ProbePassed``, ``ProbeVanished``) and applies the
  commands those return as effects;
- VMDB (DB/VMDBTables/backoff.py) stores a queue's ``BackoffState``: it reads the row, calls
  ``transition`` and writes the new state with a compare-and-set on the row it read.

The queue (one CE and profile) moves through four phases::

    OPEN --FailuresSeen--> BACKING_OFF --(time passes: until)--> AWAITING_PROBE
    AWAITING_PROBE --ClaimProbe--> PROBING --ProbeVanished--> AWAITING_PROBE
    AWAITING_PROBE / PROBING --ProbePassed--> OPEN
    any phase --FailuresSeen (a failure that counts)--> BACKING_OFF (the end never moves back)

A VM moves through ``VMPhase``s (CREATING, BOOTING, RUNNING, ENDED, DELETING, GONE) as the
VMDirector's listing shows it; each ``VMEnd`` (an event of the VMDirector's, ``VM_ENDS``) ends its
life from the phases it names, with the status its pilot gets. ``VMLifecycle.decide`` holds the
thresholds that make each one happen.

A failure counts when its kind counts towards backoff (a full project or cloud, FailureKind.QUOTA
or CAPACITY, is a pause the CE's quota headroom handles) and its VM was born since the running
backoff began (a burst of VMs created before the backoff must not extend it again and again).
A probe passes when a VM of the profile created once the backoff ended runs past the fizzle time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum

from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import VM, VMState

#: The fizzle time the CE assumes when it is not told (the VMDirector's FizzleSeconds default).
DEFAULT_FIZZLE_SECONDS = 600


def aware(value: datetime | None) -> datetime | None:
    """A naive datetime (DIRAC databases store naive UTC) as an aware UTC one."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# --- states ----------------------------------------------------------------------------------
class QueuePhase(str, Enum):
    OPEN = "open"  # no backoff: the CE submits as its capacity allows
    BACKING_OFF = "backing off"  # the CE submits nothing until the backoff ends
    AWAITING_PROBE = "awaiting probe"  # the backoff ended: the CE may claim one probe VM
    PROBING = "probing"  # one probe VM was claimed; its fate ends or restarts the backoff


@dataclass(frozen=True)
class BackoffState:
    """A queue's backoff as the VM database keeps it (no row: the queue is OPEN)."""

    ce: str
    profile: str
    until: datetime
    reason: str = ""
    probe: bool = False  # a probe VM has been claimed
    probe_vm: str = ""
    probe_started: datetime | None = None
    failures: int = 0  # backoffs recorded since the queue was last OPEN

    @classmethod
    def from_record(cls, record: Mapping) -> BackoffState:
        """From a VM database row (VMDB.getBackoff); naive UTC times become aware."""
        return cls(
            ce=record["ce"],
            profile=record.get("profile") or "",
            until=aware(record["until"]),
            reason=record.get("reason") or "",
            probe=bool(record.get("probe")),
            probe_vm=record.get("probe_vm") or "",
            probe_started=aware(record.get("probe_started")),
            failures=int(record.get("failures") or 0),
        )

    def in_backoff(self, now: datetime) -> bool:
        return now < self.until

    def phase(self, now: datetime) -> QueuePhase:
        if self.in_backoff(now):
            return QueuePhase.BACKING_OFF
        return QueuePhase.PROBING if self.probe else QueuePhase.AWAITING_PROBE


def queue_phase(state: BackoffState | None, now: datetime) -> QueuePhase:
    return QueuePhase.OPEN if state is None else state.phase(now)


def backoff_started(state: BackoffState, backoff_seconds: float) -> datetime:
    """When the backoff began (it lasts backoff_seconds)."""
    return state.until - timedelta(seconds=backoff_seconds)


# --- commands: the events VMDB stores (also the effects of the VMDirector's observations) ----
@dataclass(frozen=True)
class StartBackoff:
    ce: str
    profile: str
    until: datetime
    reason: str
    probe: bool = False


@dataclass(frozen=True)
class ClaimProbe:
    """The CE wants to start `vm_name` as the one probe VM of an ended backoff."""

    ce: str
    profile: str
    vm_name: str


@dataclass(frozen=True)
class ReleaseProbe:
    """The claimed probe VM is gone without a verdict: another probe may start."""

    ce: str
    profile: str


@dataclass(frozen=True)
class ClearBackoff:
    ce: str
    profile: str


Command = StartBackoff | ClaimProbe | ReleaseProbe | ClearBackoff


# --- observations: what the VMDirector saw in one cycle ---------------------------------------
@dataclass(frozen=True)
class Failure:
    """One failure of a VM of the queue: a create the cloud refused, an ERROR VM, a VM that
    never booted or that fizzled."""

    reason: str
    born: datetime | None  # when the VM was created (None: unknown, counts as new)
    kind: FailureKind | None = None  # None: a failure of the VM itself, which always counts
    #: the backoff length of the VM's queue, to tell whether it was born since the backoff began
    backoff_seconds: float | None = None


@dataclass(frozen=True)
class FailuresSeen:
    ce: str
    profile: str
    failures: tuple[Failure, ...]
    backoff_seconds: float


@dataclass(frozen=True)
class ProbePassed:
    """A VM created once the backoff ended ran past the fizzle time."""

    ce: str
    profile: str


@dataclass(frozen=True)
class ProbeVanished:
    """The claimed probe VM left the listing without passing or fizzling."""

    ce: str
    profile: str


Event = Command | FailuresSeen | ProbePassed | ProbeVanished


@dataclass(frozen=True)
class Transition:
    state: BackoffState | None  # None: the queue is OPEN (no row)
    effects: tuple[Command, ...] = ()  # what the adapter must store or apply
    refused: str = ""  # why the event changed nothing ("" when it was accepted)


def transition(state: BackoffState | None, event: Event, now: datetime) -> Transition:
    """The queue's next state after `event` at `now`, with the commands the adapter applies."""
    match event:
        case FailuresSeen():
            return _failures_seen(state, event, now)
        case StartBackoff():
            return Transition(_backed_off(state, event))
        case ClaimProbe():
            return _claim(state, event, now)
        case ReleaseProbe():
            if state is None:
                return Transition(None, refused="no backoff")
            return Transition(replace(state, probe=False, probe_vm="", probe_started=None))
        case ClearBackoff():
            return Transition(None)
        case ProbePassed():
            if queue_phase(state, now) not in (QueuePhase.AWAITING_PROBE, QueuePhase.PROBING):
                return Transition(state, refused="no ended backoff")
            return Transition(None, (ClearBackoff(event.ce, event.profile),))
        case ProbeVanished():
            if state is None or not state.probe:
                return Transition(state, refused="no probe claimed")
            return Transition(
                replace(state, probe=False, probe_vm="", probe_started=None),
                (ReleaseProbe(event.ce, event.profile),),
            )
    raise TypeError(f"not a queue event: {event!r}")


def counts(state: BackoffState | None, failure: Failure, backoff_seconds: float) -> bool:
    """Whether `failure` (re)starts the backoff of a queue in `state`."""
    if failure.kind is not None and not failure.kind.counts_towards_backoff:
        return False
    if state is None or failure.born is None:
        return True
    length = backoff_seconds if failure.backoff_seconds is None else failure.backoff_seconds
    return failure.born >= backoff_started(state, length)


def _failures_seen(state: BackoffState | None, event: FailuresSeen, now: datetime) -> Transition:
    why = [f.reason for f in event.failures if counts(state, f, event.backoff_seconds)]
    if not why:
        return Transition(state, refused="no failure that counts")
    more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
    start = StartBackoff(event.ce, event.profile, now + timedelta(seconds=event.backoff_seconds), why[0] + more)
    return Transition(_backed_off(state, start), (start,))


def _backed_off(state: BackoffState | None, start: StartBackoff) -> BackoffState:
    """A backoff recorded: the end never moves backwards (the later end and its reason win),
    one more failure counted; the probe VM's name stays (its VM is still told apart)."""
    if state is None:
        return BackoffState(start.ce, start.profile, start.until, start.reason, start.probe, failures=1)
    later = start.until >= state.until
    return replace(
        state,
        until=start.until if later else state.until,
        reason=start.reason if later else state.reason,
        probe=start.probe,
        failures=state.failures + 1,
    )


def _claim(state: BackoffState | None, claim: ClaimProbe, now: datetime) -> Transition:
    phase = queue_phase(state, now)
    if phase is not QueuePhase.AWAITING_PROBE:
        refusal = {
            QueuePhase.OPEN: "no backoff: no probe needed",
            QueuePhase.BACKING_OFF: "still backing off",
            QueuePhase.PROBING: "another probe VM is running",
        }[phase]
        return Transition(state, refused=refusal)
    return Transition(replace(state, probe=True, probe_vm=claim.vm_name, probe_started=now))


# --- what the listing says about the probe ----------------------------------------------------
def probe_passed(vm: VM, born: datetime | None, state: BackoffState, now: datetime, fizzle_seconds: float) -> bool:
    """`vm` (of the queue, created at `born`) was created once the backoff ended and ran past
    the fizzle time."""
    if born is None or born < state.until:
        return False
    if vm.state is VMState.ACTIVE:
        lived = (now - (vm.launched or born)).total_seconds()
    elif vm.state is VMState.SHUTOFF:
        lived = ((vm.updated or now) - (vm.launched or born)).total_seconds()
    else:
        return False
    return lived >= fizzle_seconds


def probe_vanished(state: BackoffState, listed: set[str], now: datetime, grace: float) -> bool:
    """The claimed probe VM is not listed, and was claimed longer ago than it may take to appear."""
    started = state.probe_started
    return (
        state.probe
        and state.probe_vm not in listed
        and (0.0 if started is None else (now - started).total_seconds()) > grace
    )


def submission_allowance(
    state: BackoffState | None,
    vms: Iterable[VM],
    now: datetime,
    fizzle_seconds: float = DEFAULT_FIZZLE_SECONDS,
) -> int | None:
    """How many VMs the CE may submit for this profile: None (no limit from backoff), 0 during a
    backoff, and in probe 1 unless a probe VM (one created since the backoff ended, of this
    profile, among `vms`, the CE's own listing) is still within its fizzle time."""
    phase = queue_phase(state, now)
    if phase is QueuePhase.OPEN:
        return None
    if phase is QueuePhase.BACKING_OFF:
        return 0
    for vm in vms:
        owner = vm.owner
        if owner is None or owner.ce != state.ce or owner.profile != state.profile:
            continue
        if vm.name != state.probe_vm and vm.created is not None and vm.created < state.until:
            continue
        if vm.state is VMState.BUILD:
            return 0
        if vm.state is VMState.ACTIVE:
            since = vm.launched or vm.created
            if since is None or (now - since).total_seconds() < fizzle_seconds:
                return 0
    return 1


# --- a VM's life -----------------------------------------------------------------------------
# DIRAC's PilotStatus values (kept as strings so this module needs no DIRAC import).
SUBMITTED, WAITING, SCHEDULED, RUNNING, UNKNOWN = "Submitted", "Waiting", "Scheduled", "Running", "Unknown"
DONE, FAILED, ABORTED, DELETED = "Done", "Failed", "Aborted", "Deleted"
PILOT_WAITING = frozenset({SUBMITTED, WAITING, SCHEDULED})
PILOT_TRANSIENT = PILOT_WAITING | {RUNNING, UNKNOWN}
PILOT_FINAL = frozenset({DONE, FAILED, ABORTED, DELETED})


class VMPhase(str, Enum):
    CREATING = "creating"  # the CE recorded it (VM record, pilot reference) before the create call
    BOOTING = "booting"  # listed BUILD
    RUNNING = "running"  # listed ACTIVE (or UNKNOWN, a state the cloud's API does not map)
    ENDED = "ended"  # listed SHUTOFF (the pilot powered it off) or ERROR (the cloud failed it)
    DELETING = "deleting"  # its delete was accepted; still listed
    GONE = "gone"  # no longer listed: its record is closed and accounted


_PHASE_OF = {
    VMState.BUILD: VMPhase.BOOTING,
    VMState.ACTIVE: VMPhase.RUNNING,
    VMState.UNKNOWN: VMPhase.RUNNING,
    VMState.SHUTOFF: VMPhase.ENDED,
    VMState.ERROR: VMPhase.ENDED,
    VMState.DELETING: VMPhase.DELETING,
}


def vm_phase(state: VMState) -> VMPhase:
    """The phase of a VM the listing shows in `state`."""
    return _PHASE_OF[state]


class VMEnd(str, Enum):
    """What ends a VM's life: the VMDirector deletes it (DELETING), then it is GONE."""

    DELETE_STUCK = "delete stuck"  # still DELETING after DeletingTimeout: delete again
    BOOTSTRAP_REPLAYED = "bootstrap replayed"  # its one-time token was presented again
    #: powered off after its bootstrap fetch failed (or never fetched, or fetched without a word
    #: after), or running BootTimeout without fetching it: a failed boot
    BOOTSTRAP_FAILED = "bootstrap failed"
    POWERED_OFF = "powered off"  # the pilot ended (Failed for a shutdown code >= 400)
    CLOUD_ERROR = "cloud error"
    NEVER_BOOTED = "never booted"  # BUILD past BootTimeout
    PAST_LIFETIME = "past its lifetime"  # older than MaxLifetime
    PILOT_OVER = "pilot over"  # a zombie: its pilot is final since ZombieGrace
    HEARTBEAT_LOST = "heartbeat lost"  # no heartbeat for HeartbeatTimeout
    ORPHAN = "orphan"  # no pilot record in two cycles past OrphanGrace
    TWIN = "twin"  # a second VM of one name (a create completed after the CE gave up on it)


@dataclass(frozen=True)
class VMEndRule:
    phases: frozenset[VMPhase]  # the phases it ends
    pilot_status: str  # the status a transient pilot gets ("": left as it is)
    may_fail_queue: bool = False  # may count towards the queue's backoff (FailuresSeen)


_LIVE = frozenset({VMPhase.BOOTING, VMPhase.RUNNING})
VM_ENDS: Mapping[VMEnd, VMEndRule] = {
    VMEnd.DELETE_STUCK: VMEndRule(frozenset({VMPhase.DELETING}), ""),
    VMEnd.BOOTSTRAP_REPLAYED: VMEndRule(_LIVE | {VMPhase.ENDED}, FAILED),
    VMEnd.BOOTSTRAP_FAILED: VMEndRule(frozenset({VMPhase.RUNNING, VMPhase.ENDED}), ABORTED, may_fail_queue=True),
    VMEnd.POWERED_OFF: VMEndRule(frozenset({VMPhase.ENDED}), DONE, may_fail_queue=True),
    VMEnd.CLOUD_ERROR: VMEndRule(frozenset({VMPhase.ENDED}), ABORTED, may_fail_queue=True),
    VMEnd.NEVER_BOOTED: VMEndRule(frozenset({VMPhase.BOOTING}), ABORTED, may_fail_queue=True),
    VMEnd.PAST_LIFETIME: VMEndRule(_LIVE, DELETED),
    VMEnd.PILOT_OVER: VMEndRule(_LIVE, ""),
    VMEnd.HEARTBEAT_LOST: VMEndRule(frozenset({VMPhase.RUNNING}), FAILED),
    VMEnd.ORPHAN: VMEndRule(_LIVE, ""),
    VMEnd.TWIN: VMEndRule(_LIVE | {VMPhase.ENDED, VMPhase.DELETING}, ""),
}
