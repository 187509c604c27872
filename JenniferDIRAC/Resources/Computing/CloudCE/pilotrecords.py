"""What the CE tells VMDB about its VMs, and what it remembers of the VMs it just asked for.

A VM's record is written before the cloud is asked (a create whose outcome is uncertain is then
never mistaken for a stranger by the VMDirector) and again with its cloud id once created. A VM
the CE just asked for may not be listed yet (EC2 listings are eventually consistent): within
LostPilotGrace it is Submitted, not the final Deleted (the VMDirector's lost-pilot rule). A VM
whose create went unanswered and that no lookup found is recorded "create uncertain" and its
pilot returned like the others': whatever the cloud did, DIRAC holds a pilot for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import Flavor
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.Resources.Cloud.submission import Outcome
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import DEFAULT_LOST_PILOT_GRACE, still_appearing

#: Longest reason the CE records in VMDB for a VM it could not create (the kind is typed)
NOT_CREATED_REASON_CHARS = 250


def vm_records(
    config: CloudCEConfig, ids: dict[str, str], stamps: dict[str, str], flavor: Flavor, now: datetime
) -> list[dict]:
    """VMDB's ``recordVMs`` records of VMs {VM name: cloud id ("" before the cloud answered)}."""
    return [
        {
            "vm_name": name,
            "vm_id": vm_id,
            "ce": config.ce_name,
            "site": config.site,
            "vo": config.vo,
            "profile": config.context_profile,
            "pilot_reference": pilot_reference(config.ce_name, name),
            "stamp": stamps[name],
            "flavor": flavor.name,
            "cores": flavor.vcpus,
            "ram_mb": flavor.ram_mb,
            "created": now,
        }
        for name, vm_id in ids.items()
    ]


def not_created(failed: Iterable[Outcome]) -> dict[str, dict[str, str]]:
    """``markVMsDeleted`` reasons of the VMs the cloud refused (an uncertain one may exist: the
    VMDirector reconciles it), each with the typed failure kind the backend read."""
    return {
        o.spec.name: {
            "reason": o.error[:NOT_CREATED_REASON_CHARS],
            "failure_kind": (o.kind or FailureKind.CLOUD_FAULT).value,
        }
        for o in failed
        if not o.uncertain
    }


def create_uncertain(outcomes: Iterable[Outcome]) -> dict[str, str]:
    """``setVMStates`` states of the VMs whose create was sent, never answered, and that no
    lookup found: they may land, so their pilots are returned to DIRAC and their records say
    so, never "deleted" (the VMDirector's listing adopts or closes them). A create the cloud
    answered with an error whose lookup then failed is left uncertain, its pilot not returned,
    as before (the orphan rule removes it should it exist)."""
    return {o.spec.name: CREATE_UNCERTAIN_STATE for o in outcomes if o.uncertain and o.unanswered}


def lost_pilot_grace(ce_parameters) -> float:
    """The CE's LostPilotGrace (seconds), the VMDirector's default when unset or garbled."""
    try:
        return max(0.0, float(ce_parameters.get("LostPilotGrace", DEFAULT_LOST_PILOT_GRACE)))
    except (TypeError, ValueError):
        return DEFAULT_LOST_PILOT_GRACE


class RecentPilots:
    """VM name -> when this CE asked for it, until it is seen listed or killed; VM name -> when it
    was seen or killed (then it is never given the "not listed yet" grace). Both forget what is
    older than LostPilotGrace: VMDB's creation time decides then. Times are read from `clock`
    (the CE's: VMDB's creation times are written from it too)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.clock = clock
        self.appearing_since: dict[str, datetime] = {}
        self.settled_at: dict[str, datetime] = {}

    def remember(self, grace: float, appearing: Iterable[str] = (), settled: Iterable[str] = ()) -> None:
        """Note VMs just asked for (`appearing`) and VMs seen listed or killed (`settled`)."""
        now = self.clock()
        for memory in (self.appearing_since, self.settled_at):
            for name in [n for n, t in memory.items() if not still_appearing(t, now, grace)]:
                del memory[name]
        for name in settled:
            self.appearing_since.pop(name, None)
            self.settled_at[name] = now
        for name in appearing:
            self.appearing_since[name] = now

    def still_appearing(
        self, grace: float, missing: list[str], records: Callable[[list[str]], list[dict] | None]
    ) -> set[str]:
        """The unlisted VMs that may just not be listed yet: created less than `grace` ago (this
        CE's memory of its submissions, else their VMDB `records`), never seen listed nor killed
        by this CE, and not recorded as deleted."""
        now = self.clock()
        unknown = [n for n in missing if n not in self.appearing_since and n not in self.settled_at]
        born = {n: self.appearing_since[n] for n in missing if n in self.appearing_since}
        for record in (records(unknown) or []) if unknown else []:
            created = record.get("created")
            if record.get("deleted") is None and created is not None:
                born[record.get("vm_name")] = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
        return {name for name, when in born.items() if still_appearing(when, now, grace)}
