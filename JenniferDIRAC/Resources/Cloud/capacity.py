"""How many more VMs a cloud CE may start, from one listing of its VMs and the project quota."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, Quota, VMState


@dataclass(frozen=True)
class Capacity:
    waiting: int  # BUILD: created, pilot not yet running
    running: int  # ACTIVE
    slots: int | None  # VMs the CE may still start; None = the cloud sets no limit
    limited_by: str = ""  # what set `slots` (for the log)


def _share_of(limit: int | None, share: float) -> int | None:
    if limit is None or limit < 0:
        return None
    return math.floor(limit * share)


def cloud_capacity(
    vms: Iterable[VM],
    quota: Quota,
    flavor: Flavor,
    quota_share: float = 1.0,
    max_starting: int | None = None,
    backoff_allowance: int | None = None,
) -> Capacity:
    """Capacity of a CE whose own VMs are `vms`.

    The project's headroom (limits minus everyone's usage, -1/None = unlimited) is capped by this
    CE's share of the limits minus its own usage (its VMs costed at `flavor`), by `max_starting`
    minus the VMs still building, and by the backoff allowance (0 during a backoff, 1 in probe).
    """
    own = [vm for vm in vms if vm.state is not VMState.DELETING]
    waiting = sum(1 for vm in own if vm.state is VMState.BUILD)
    running = sum(1 for vm in own if vm.state is VMState.ACTIVE)

    limits: list[tuple[float, str]] = [(quota.headroom(flavor), "project quota")]
    if quota_share < 1.0:
        share = Quota(
            max_instances=_share_of(quota.max_instances, quota_share),
            used_instances=len(own),
            max_cores=_share_of(quota.max_cores, quota_share),
            used_cores=len(own) * flavor.vcpus,
            max_ram_mb=_share_of(quota.max_ram_mb, quota_share),
            used_ram_mb=len(own) * flavor.ram_mb,
        )
        limits.append((share.headroom(flavor), "QuotaShare"))
    if max_starting is not None:
        limits.append((max(0, max_starting - waiting), "MaxStartingVMs"))
    if backoff_allowance is not None:
        limits.append((backoff_allowance, "backoff"))

    room, reason = min(limits, key=lambda item: item[0])
    if math.isinf(room):
        return Capacity(waiting, running, None, "")
    return Capacity(waiting, running, int(room), reason)


@dataclass(frozen=True)
class Community:
    """One claimant on a shared project: a CE of this installation or a foreign installation
    seen in the listing. ``used`` in VMs (or cores: any one unit for every community)."""

    name: str
    weight: float  # QuotaWeight
    used: int
    in_backoff: bool = False  # lends its share
    #: VMs it started since the caller's previous decision (the listing's creation times)
    started: int = 0


def lending_slots(total: int, me: str, communities: Iterable[Community], unclaimed_before: int) -> int:
    """How many more VMs `me` may start on a project of `total` slots shared by weights.

    Each community not in backoff is entitled to ``total * weight / sum of weights``; within its
    entitlement it may take any free slot at once. Beyond it, it may take only slots that were
    already free at its previous decision (``unclaimed_before``): the communities under their
    share had a whole cycle to claim them and did not, so their share is lent. Nobody's VM is
    ever stopped: a community over its share just does not replace its VMs as they end, and the
    freed slots go to the communities under theirs. Nothing is lent while another community
    under its share is still starting VMs (it wants them). A CE in backoff gets nothing and
    lends all.
    """
    members = {c.name: c for c in communities}
    mine = members[me]
    if mine.in_backoff or total <= 0:
        return 0
    free = max(0, total - sum(c.used for c in members.values()))
    weights = sum(c.weight for c in members.values() if not c.in_backoff and c.weight > 0)
    entitled = math.floor(total * mine.weight / weights + 1e-9) if weights else total
    within = max(0, entitled - mine.used)

    def wants_its_share(other: Community) -> bool:
        share = math.floor(total * other.weight / weights + 1e-9) if weights else 0
        return other.started > 0 and other.used - other.started < share

    lent = max(0, unclaimed_before)
    if any(wants_its_share(c) for c in members.values() if c.name != me and not c.in_backoff):
        lent = 0
    return min(free, max(within, lent))
