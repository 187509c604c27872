"""The flavors and availability zones a CE's VMs may use, in order of preference: the next VMs
use the first (flavor, zone) the cloud has not answered "no capacity" for (placement.py keeps
that answer for CapacityCacheSeconds, shared by the CEs of the process; with VMDB, its
VMCapacity table shares it with the CEs of every other process too). Not a CE failure: no
backoff. Nova reports "No valid host" as an ERROR VM after accepting the create, so the CE
remembers where each VM it created was placed, to learn it from the next listing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Iterable

from JenniferDIRAC.Resources.Cloud import placement
from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import FailureKind
from JenniferDIRAC.Resources.Cloud.model import VM, VMState

#: VMs whose placement is remembered at most (the oldest are forgotten first: VMs deleted while
#: building, never listed past BUILD)
MAX_REMEMBERED_PLACEMENTS = 10000


class Placements:
    def __init__(self, log, ce_name: str, shared: Callable[..., object] | None = None) -> None:
        self.log = log
        self.ce_name = ce_name
        #: VMStateAdapter.call: VMDB's VMCapacity (None, or a call answering None: this process only)
        self.shared = shared
        #: VM name -> the (flavor, zone) it was created on
        self.placed_on: dict[str, placement.Placement] = {}

    def cloud_key(self, backend: CloudBackend) -> Hashable:
        return backend.listing_scope() or ("ce", self.ce_name)

    @staticmethod
    def shared_key(cloud: Hashable) -> str:
        """The cloud's key in VMCapacity: the same in every process for the same cloud project."""
        parts = list(cloud) if isinstance(cloud, tuple) else [cloud]
        return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()

    def open(self, backend: CloudBackend, config: CloudCEConfig) -> list[placement.Placement]:
        """The (flavor, zone) choices with capacity now, in order of preference."""
        options = placement.preferences(config.flavors or (config.flavor,), config.availability_zones)
        cloud = self.cloud_key(backend)
        if self.shared is not None:
            for row in self.shared("getNoCapacity", self.shared_key(cloud)) or ():
                where = placement.Placement(row["flavor"], row["zone"] or None)
                if where in options:  # another process saw it full
                    placement.MEMORY.exhausted(cloud, where, row["seconds"])
        return placement.MEMORY.choose(cloud, options)

    def next_flavor(self, backend: CloudBackend, config: CloudCEConfig) -> str:
        """The flavor reference the next VMs use: the first preferred one with capacity."""
        choices = self.open(backend, config)
        return choices[0].flavor if choices else config.flavor

    def place(self, names: Iterable[str], where: placement.Placement) -> None:
        for name in names:
            self.placed_on[name] = where
        while len(self.placed_on) > MAX_REMEMBERED_PLACEMENTS:  # names whose VMs never went to ERROR
            self.placed_on.pop(next(iter(self.placed_on)))

    def no_capacity(self, backend: CloudBackend, config: CloudCEConfig, where: placement.Placement, why: str) -> None:
        """The cloud has no host for `where` now: skip it for CapacityCacheSeconds (no backoff)."""
        cloud = self.cloud_key(backend)
        placement.MEMORY.exhausted(cloud, where, config.capacity_cache_seconds)
        if self.shared is not None:
            self.shared("setNoCapacity", self.shared_key(cloud), where.flavor, where.zone or "",
                        config.capacity_cache_seconds, why[:512])
        self.log.info(
            "No capacity for a flavor/zone, falling back to the next",
            f"{self.ce_name}: {where.flavor} zone={where.zone or '-'}: {why[:200]}",
        )

    def note_capacity_errors(self, backend: CloudBackend, config: CloudCEConfig, vms: Iterable[VM]) -> None:
        """The listing shows VMs in ERROR for lack of capacity: their (flavor, zone) is full. A VM
        listed past BUILD was scheduled (or failed): its placement is forgotten, so the names
        remembered are those of the VMs still building, not of every VM the CE created."""
        for vm in vms:
            if vm.state is VMState.BUILD or vm.name not in self.placed_on:
                continue
            where = self.placed_on.pop(vm.name)
            if vm.state is VMState.ERROR and vm.fault_kind is FailureKind.CAPACITY:
                self.no_capacity(backend, config, where, vm.fault)
