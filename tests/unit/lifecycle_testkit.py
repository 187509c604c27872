"""What the lifecycle policy tests share: the CE they speak of, its thresholds, and builders of
the records the policy reads (cloud VMs, pilot records, VM records), each keyed by the VM's name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import PilotRecord, Thresholds, VMRecord

CE = "cloud.example.org"
#: when the one-VM tests (create uncertain, failed boots) judge, and the owner of their VMs
NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
EL9_OWNER = OwnerTags(installation="test", ce=CE, profile="el9")


def thresholds(**overrides) -> Thresholds:
    """The thresholds of the policy tests (a VM lives at most a day), with `overrides`."""
    values = {
        "boot_timeout": 600,
        "max_lifetime": 86400,
        "zombie_grace": 300,
        "orphan_grace": 300,
        "lost_pilot_grace": 120,
        "heartbeat_timeout": 900,
        "fizzle_seconds": 600,
        "backoff_seconds": 1800,
        "deleting_timeout": 600,
    }
    return Thresholds(**{**values, **overrides})


def ago(seconds: float, now: dt.datetime = NOW) -> dt.datetime:
    return now - dt.timedelta(seconds=seconds)


def cloud_vm(name: str, state: VMState, created: dt.datetime, owner: OwnerTags | None, vm_id: str = "",
             **fields) -> VM:
    """What the cloud lists of VM `name` (`owner` None: a VM without owner metadata)."""
    return VM(id=vm_id or "id-" + name, name=name, state=state, created=created,
              metadata=owner.to_metadata() if owner else {}, **fields)


def pilot_record(name: str, status: str, updated: dt.datetime, submitted: dt.datetime | None = None,
                 job_id: int = 0) -> PilotRecord:
    """PilotAgentsDB's record of the pilot of VM `name` (submitted when last updated, unless said)."""
    return PilotRecord(pilot_reference(CE, name), status, updated, submitted or updated, job_id)


def by_reference(pilots: Iterable[PilotRecord]) -> dict[str, PilotRecord]:
    return {pilot.reference: pilot for pilot in pilots}


def vm_record(name: str, created: dt.datetime, **fields) -> VMRecord:
    """VMDB's record of VM `name` of the CE; `fields`: the record's other fields."""
    return VMRecord(name, CE, created=created, **fields)


def el9_record(name: str, created: dt.datetime, vm_id: str = "", **fields) -> VMRecord:
    """VMDB's record of VM `name`, created by the CE for its el9 queue, with its pilot's reference."""
    return vm_record(name, created, profile="el9", pilot_reference=pilot_reference(CE, name), vm_id=vm_id,
                     **fields)
