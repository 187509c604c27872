"""Backoff of a cloud CE (per profile) after failures, as pure functions.

A create failure, an ERROR VM, a VM that never boots, or a VM that fizzles (ends within the
fizzle time without running a job, or reports a shutdown code 300-699) starts a backoff: the CE
submits nothing until `until`. After that it is in probe: one VM at a time, until a VM created
after `until` runs past the fizzle time, which clears the backoff (the VMDirector does that).
A full project or cloud (FailureKind.QUOTA / CAPACITY, ``counts_towards_backoff`` False) is a
pause handled by the CE's quota headroom, never a backoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from JenniferDIRAC.Resources.Cloud.model import VM, VMState

#: The fizzle time the CE assumes when it is not told (the VMDirector's FizzleSeconds default).
DEFAULT_FIZZLE_SECONDS = 600


def aware(value: datetime | None) -> datetime | None:
    """A naive datetime (DIRAC databases store naive UTC) as an aware UTC one."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackoffState:
    """A backoff as the VM database keeps it."""

    ce: str
    profile: str
    until: datetime
    reason: str = ""
    probe: bool = False  # a probe VM has been claimed
    probe_vm: str = ""
    probe_started: datetime | None = None

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
        )

    def in_backoff(self, now: datetime) -> bool:
        return now < self.until


@dataclass(frozen=True)
class StartBackoff:
    ce: str
    profile: str
    until: datetime
    reason: str


@dataclass(frozen=True)
class ClearBackoff:
    ce: str
    profile: str


@dataclass(frozen=True)
class ReleaseProbe:
    """The claimed probe VM is gone without a verdict: another probe may start."""

    ce: str
    profile: str


def backoff_started(state: BackoffState, backoff_seconds: float) -> datetime:
    """When the backoff began (it lasts backoff_seconds)."""
    return state.until - timedelta(seconds=backoff_seconds)


def submission_allowance(
    state: BackoffState | None,
    vms: Iterable[VM],
    now: datetime,
    fizzle_seconds: float = DEFAULT_FIZZLE_SECONDS,
) -> int | None:
    """How many VMs the CE may submit for this profile: None (no limit from backoff), 0 during a
    backoff, and in probe 1 unless a probe VM (one created since the backoff ended, of this
    profile, among `vms`, the CE's own listing) is still within its fizzle time."""
    if state is None:
        return None
    if state.in_backoff(now):
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
