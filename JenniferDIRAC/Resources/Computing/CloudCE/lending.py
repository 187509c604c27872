"""QuotaWeight / InstallationQuotaWeights / OthersQuotaWeight: this CE against each other
installation named on the project and everything else (capacity.lending_slots), in VMs of one
flavor out of the project's instance limit (its cores when instances are unlimited; a VM of
another installation then counts as one VM of this CE's flavor). What the CE saw last cycle
decides what it may borrow now, so a CE keeps one QuotaLending. The VMs of the named
installations come from one listing of the project, shared by the CEs of the process for
ListingCacheSeconds."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.capacity import Community, lending_slots
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, Quota, VMState
from JenniferDIRAC.Resources.Cloud.sharedlisting import SharedValue

#: not installation names (quotaweights._NAME)
ME, OTHERS = "(this CE)", "(others)"

_usage_lock = threading.Lock()
_usage: dict[Hashable, SharedValue] = {}


def installation_usage(backend: CloudBackend, ce_name: str, max_age: float) -> Mapping[str, int] | None:
    """{installation: its live VMs on the project} from one listing shared for `max_age`
    seconds; None when the cloud cannot list every installation's VMs."""
    scope = backend.listing_scope() or ("ce", ce_name)
    with _usage_lock:
        shared = _usage.setdefault(scope, SharedValue())

    def fetch():
        vms = backend.list_project_vms()
        if vms is None:
            return None
        return Counter(vm.owner.installation for vm in vms if vm.state is not VMState.DELETING)

    return shared.get(fetch, max_age, fetcher=backend)


def forget_usage() -> None:
    with _usage_lock:
        _usage.clear()


class QuotaLending:
    def __init__(self) -> None:
        #: ({community: its VMs}, slots left free) at the last cycle; None before the first
        self._before: tuple[dict[str, int], int] | None = None

    def apply(self, config: CloudCEConfig, quota: Quota, vms: Sequence[VM], flavor: Flavor, capacity,
              usage: Mapping[str, int] | None = None):
        """`capacity` (capacity.cloud_capacity) limited to this CE's lending share; `usage`:
        installation_usage, when InstallationQuotaWeights names installations."""
        mine = len([vm for vm in vms if vm.state is not VMState.DELETING])
        total = quota.max_instances
        used = quota.used_instances
        if total is None or total < 0:
            if quota.max_cores is None or quota.max_cores < 0 or not flavor.vcpus:
                return capacity
            total, used = quota.max_cores // flavor.vcpus, quota.used_cores // flavor.vcpus
        weights = {ME: config.quota_weight, **config.installation_quota_weights}
        named = {}
        if usage is not None:
            named = {name: int(usage.get(name, 0)) for name in config.installation_quota_weights}
        # the cloud cannot tell the installations apart: the named ones are "others" too
        unseen = sum(w for n, w in weights.items() if n != ME and n not in named)
        weights[OTHERS] = config.others_quota_weight + unseen
        now = {ME: mine, **named, OTHERS: max(0, used - mine - sum(named.values()))}
        before, unclaimed = self._before or (dict(now), 0)
        backoff = capacity.slots == 0 and capacity.limited_by == "backoff"
        communities = [
            Community(name, weights[name], count, backoff if name == ME else False,
                      started=0 if name == ME else max(0, count - before.get(name, count)))
            for name, count in now.items()
        ]
        slots = lending_slots(total, ME, communities, unclaimed)
        free = max(0, total - used)
        taken = min(slots, capacity.slots if capacity.slots is not None else slots)
        self._before = (now, max(0, free - taken))
        if capacity.slots is None or slots < capacity.slots:
            return dataclasses.replace(capacity, slots=slots, limited_by="QuotaWeight")
        return capacity
