"""Which flavor and availability zone a CE's next VMs use: the first of its preferences the
cloud has not recently answered "no capacity" for.

A capacity answer ("No valid host", InsufficientInstanceCapacity) is about the cloud's hosts,
not about the CE: it is remembered per (cloud, flavor, zone) for CapacityCacheSeconds, shared
by every CE of the process on that cloud (and, through VMDB's VMCapacity, by the CEs of other
processes: CloudCE/placements.py), and never counts towards a backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    flavor: str  # the Instance_Flavor reference (id or name:<name>)
    zone: str | None


def preferences(flavors: Sequence[str], zones: Sequence[str]) -> list[Placement]:
    """Every (flavor, zone) in order: a preferred flavor in any zone before the next flavor."""
    return [Placement(f, z) for f in flavors for z in (list(zones) or [None])]


class CapacityMemory:
    """(cloud, flavor, zone) combinations that had no capacity, until when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[tuple[Hashable, Placement], float] = {}
        self._lock = threading.Lock()

    def exhausted(self, cloud: Hashable, placement: Placement, seconds: float) -> None:
        """Skip `placement` for `seconds` more (a longer memory already kept stays)."""
        with self._lock:
            key = (cloud, placement)
            self._until[key] = max(self._until.get(key, 0.0), self.clock() + seconds)

    def is_exhausted(self, cloud: Hashable, placement: Placement) -> bool:
        with self._lock:
            until = self._until.get((cloud, placement))
            if until is None:
                return False
            if until <= self.clock():
                del self._until[(cloud, placement)]
                return False
            return True

    def choose(self, cloud: Hashable, options: Sequence[Placement]) -> list[Placement]:
        """The options still worth trying, in order (none while every one is exhausted)."""
        return [p for p in options if not self.is_exhausted(cloud, p)]

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


#: shared by the CEs of the process (a SiteDirector serves many queues on one cloud)
MEMORY = CapacityMemory()
