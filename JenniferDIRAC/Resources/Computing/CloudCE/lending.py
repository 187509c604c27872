"""QuotaWeight / OthersQuotaWeight: this CE against everything else on the project
(capacity.lending_slots), in VMs of one flavor out of the project's instance limit (its cores
when instances are unlimited). What the CE saw last cycle decides what it may borrow now, so a
CE keeps one QuotaLending."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from JenniferDIRAC.Resources.Cloud.capacity import Community, lending_slots
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, Quota, VMState


class QuotaLending:
    def __init__(self) -> None:
        #: (VMs of the others, slots left free) at the last cycle; None before the first
        self._before: tuple[int, int] | None = None

    def apply(self, config: CloudCEConfig, quota: Quota, vms: Sequence[VM], flavor: Flavor, capacity):
        """`capacity` (capacity.cloud_capacity) limited to this CE's lending share."""
        mine = len([vm for vm in vms if vm.state is not VMState.DELETING])
        total = quota.max_instances
        used = quota.used_instances
        if total is None or total < 0:
            if quota.max_cores is None or quota.max_cores < 0 or not flavor.vcpus:
                return capacity
            total, used = quota.max_cores // flavor.vcpus, quota.used_cores // flavor.vcpus
        others = max(0, used - mine)
        before = self._before or (others, 0)
        communities = [
            Community("me", config.quota_weight, mine, capacity.slots == 0 and capacity.limited_by == "backoff"),
            Community("others", config.others_quota_weight, others, started=max(0, others - before[0])),
        ]
        slots = lending_slots(total, "me", communities, before[1])
        free = max(0, total - used)
        self._before = (others, max(0, free - min(slots, capacity.slots if capacity.slots is not None else slots)))
        if capacity.slots is None or slots < capacity.slots:
            return dataclasses.replace(capacity, slots=slots, limited_by="QuotaWeight")
        return capacity
