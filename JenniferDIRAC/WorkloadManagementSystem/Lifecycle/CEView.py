"""What the lifecycle policy sees of one CE in one cycle (``CEView``: the listing, the pilot and
VM records, the backoffs, the thresholds) and the actions ``VMLifecycle.decide`` returns for the
VMDirector to apply. Plain data, no rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (
    RUNNING,
    BackoffState,
    ClearBackoff,
    ReleaseProbe,
    StartBackoff,
    VMEnd,
    aware,
)

#: Seconds a VM may be missing from listings after its creation without being gone: the VM
#: record and pilot are written before the create call, and EC2 listings are eventually
#: consistent. The VMDirector's and the CE's ``LostPilotGrace`` (one rule: ``still_appearing``).
DEFAULT_LOST_PILOT_GRACE = 600.0

@dataclass(frozen=True)
class Thresholds:
    """Seconds; see the VMDirector section of ConfigTemplate.cfg."""

    boot_timeout: float = 3600
    max_lifetime: float = 14 * 86400 + 3600
    zombie_grace: float = 1800
    orphan_grace: float = 900
    lost_pilot_grace: float = DEFAULT_LOST_PILOT_GRACE
    heartbeat_timeout: float = 3600  # 0: never
    fizzle_seconds: float = 600
    backoff_seconds: float = 1800
    deleting_timeout: float = 900

    def __post_init__(self):
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"threshold {name} must not be negative, got {value}")


@dataclass(frozen=True)
class PilotRecord:
    """What PilotAgentsDB knows of one pilot."""

    reference: str
    status: str
    last_update: datetime | None = None
    submitted: datetime | None = None
    job_id: int = 0  # CurrentJobID: non-zero once the pilot matched a job

    @property
    def ran_job(self) -> bool:
        return self.job_id > 0 or self.status == RUNNING


@dataclass(frozen=True)
class VMRecord:
    """What the VM database knows of one VM this installation created."""

    vm_name: str
    ce: str
    profile: str = ""
    pilot_reference: str = ""
    vm_id: str = ""  # the cloud id the CE kept ("" before the cloud answered)
    #: the state last recorded (the listing's, or the CE's CREATE_UNCERTAIN_STATE)
    cloud_state: str = ""
    created: datetime | None = None
    started: datetime | None = None  # first seen running
    ended: datetime | None = None  # first seen SHUTOFF / ERROR
    deleted: datetime | None = None  # deleted, or seen gone; None while it lives
    delete_reason: str = ""  # for people: why it was deleted (or not created)
    #: set when the CE could not create the VM: what the cloud's refusal meant
    failure_kind: FailureKind | None = None
    accounted: bool = False
    last_heartbeat: datetime | None = None
    shutdown_code: int | None = None
    shutdown_text: str = ""

    @classmethod
    def from_record(cls, record: Mapping) -> VMRecord:
        """From a VM database dict (VMDB.getVMs); its naive UTC times become aware."""
        return cls(
            vm_name=record["vm_name"],
            ce=record["ce"],
            profile=record.get("profile") or "",
            pilot_reference=record.get("pilot_reference") or "",
            vm_id=record.get("vm_id") or "",
            cloud_state=record.get("cloud_state") or "",
            created=aware(record.get("created")),
            started=aware(record.get("started")),
            ended=aware(record.get("ended")),
            deleted=aware(record.get("deleted")),
            delete_reason=record.get("delete_reason") or "",
            failure_kind=failure_kind(record.get("failure_kind")),
            accounted=bool(record.get("accounted")),
            last_heartbeat=aware(record.get("last_heartbeat")),
            shutdown_code=record.get("shutdown_code"),
            shutdown_text=record.get("shutdown_message") or "",
        )


    @property
    def create_uncertain(self) -> bool:
        """Its create went unanswered, no lookup found it, and no listing has shown it since."""
        return self.cloud_state == CREATE_UNCERTAIN_STATE and not self.vm_id


def failure_kind(value) -> FailureKind | None:
    """The FailureKind of a VM database value ('' or an unknown value: None)."""
    try:
        return FailureKind(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class BootstrapRecord:
    """A VM's one-time bootstrap (VMDB's VMBootstrap row): only VMs created with a
    contextualization endpoint have one."""

    vm_name: str
    fetched: datetime | None = None  # when the endpoint handed it out; None: never

    @classmethod
    def from_fetched(cls, bootstraps: Mapping) -> dict[str, BootstrapRecord]:
        """{VM name: BootstrapRecord} of VMDB.getBootstraps' {VM name: fetch time or None}."""
        return {name: cls(name, aware(fetched)) for name, fetched in bootstraps.items()}


@dataclass(frozen=True)
class CEView:
    """Everything the policy sees of one CE in one cycle."""

    owner: OwnerTags  # this installation and CE
    vms: Sequence[VM]  # ONE successful listing (a failed listing never reaches the policy)
    pilots: Mapping[str, PilotRecord]  # by reference (no stamp suffix)
    records: Mapping[str, VMRecord]  # by VM name
    backoffs: Mapping[str, BackoffState]  # by profile ("" for the CE as a whole)
    now: datetime
    thresholds: Thresholds = field(default_factory=Thresholds)  # the CE level's
    orphan_sightings: frozenset[str] = frozenset()  # VM names that were orphan candidates last cycle
    #: each queue's thresholds (its options over the CE's), for the VMs submitted for it
    queue_thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    #: VMs whose one-time bootstrap token was presented again (VMDB incidents): someone else
    #: holds what the VM was given
    bootstrap_replayed: frozenset[str] = frozenset()
    #: the bootstraps of the VMs created with a contextualization endpoint, by VM name (a VM
    #: without one, its wrapper in user data, has none: the failed-boot rules do not apply)
    bootstraps: Mapping[str, BootstrapRecord] = field(default_factory=dict)

    def thresholds_of(self, vm: VM) -> Thresholds:
        """The thresholds of the queue `vm` was submitted for (its owner metadata); the CE
        level's for a VM without a queue (created before VMs carried it) or of a queue the CE
        no longer has."""
        owner = vm.owner
        return self.thresholds_of_queue(owner.queue if owner is not None else "")

    def thresholds_of_queue(self, queue: str) -> Thresholds:
        """The thresholds of the VMs submitted for `queue` ("" : the CE level's)."""
        return self.queue_thresholds.get(queue, self.thresholds) if queue else self.thresholds


# --- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeleteVM:
    vm_id: str
    vm_name: str
    reason: str
    ended: datetime  # when the VM's life ended (for accounting)
    after_pilot: str = ""  # a pilot reference whose final status must be recorded first
    #: an extra VM of a name whose VM record belongs to the kept VM: the record stays open
    twin: bool = False
    #: which end of the VM's life (StateMachine.VM_ENDS); what it is for, not part of the action
    end: VMEnd | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SetPilotStatus:
    reference: str
    status: str
    reason: str


@dataclass(frozen=True)
class RecordGone:
    """A VM the database believes alive is not in the cloud any more."""

    vm_name: str
    ended: datetime
    reason: str = ""  # for people; "" for "gone from the cloud"


@dataclass(frozen=True)
class Account:
    """Account a finished VM (its figures are in the VM database). `after_delete`: only once
    this cycle's DeleteVM (or RecordGone) of it has been recorded."""

    vm_name: str
    after_delete: bool = False


Action = DeleteVM | SetPilotStatus | RecordGone | Account | StartBackoff | ClearBackoff | ReleaseProbe


@dataclass(frozen=True)
class Decision:
    actions: list[Action]
    orphan_sightings: frozenset[str]  # to pass back as CEView.orphan_sightings next cycle

    def of_type(self, kind: type) -> list:
        return [a for a in self.actions if isinstance(a, kind)]
