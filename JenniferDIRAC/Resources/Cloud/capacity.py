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
