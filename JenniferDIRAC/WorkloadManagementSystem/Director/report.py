"""What one CE's cycle did, and the exception that leaves a CE out of a cycle."""

from __future__ import annotations

from dataclasses import dataclass


class CENotServedThisCycle(Exception):
    """This CE's configuration, cloud or databases cannot be read this cycle: nothing is decided
    for it, and the other CEs carry on."""


@dataclass
class CEReport:
    """What one CE's cycle did, for the cycle's log line."""

    ce: str
    vms: int = 0
    deleted: int = 0
    delete_failures: int = 0
    pilots_set: int = 0
    accounted: int = 0
    backoffs: int = 0
    skipped: str = ""  # why the CE was skipped, "" if it was not

    def line(self) -> str:
        if self.skipped:
            return f"{self.ce}: skipped ({self.skipped})"
        return (
            f"{self.ce}: {self.vms} VMs, {self.deleted} deleted, {self.delete_failures} delete failures, "
            f"{self.pilots_set} pilot statuses, {self.accounted} accounted, {self.backoffs} backoffs"
        )
