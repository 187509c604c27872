"""The pilot records of a CE's VMs, as the lifecycle policy reads them (PilotRecord)."""

from __future__ import annotations

import threading

from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import PilotRow, pilot_rows, pilot_store, pilot_time
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import aware
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import PILOT_TRANSIENT, PilotRecord

_TRANSIENT = sorted(PILOT_TRANSIENT)


class PilotRecords:
    """Reads and sets pilot records in `store` (default: PilotAgentsDB directly where it is
    configured on this host, PilotManager otherwise).

    It keeps the PilotRecords of each CE's last two reads (a cycle reads a CE's pilots once or
    twice: those of its VM records, then those of listed VMs without one) with the row each was
    made of: a row read again unchanged (most of a steady cycle's 1,250 per CE) gives back the
    same (frozen) record instead of a new one with its times read and made aware again. What
    neither of the two last reads of a CE read is forgotten."""

    def __init__(self, store=None):
        self.store = store if store is not None else pilot_store().store
        self._lock = threading.Lock()
        #: CE -> (its last read, the read before), each {reference: (row, record)}
        self._kept: dict[str, tuple[dict[str, tuple[PilotRow, PilotRecord]], ...]] = {}

    def records(self, ce: str, references: set[str]) -> dict[str, PilotRecord]:
        """The records of `references` and of every transient pilot sent to `ce`."""
        result = pilot_rows(self.store, ce, _TRANSIENT, references)
        if not result["OK"]:
            raise CENotServedThisCycle(f"cannot read pilot records: {result['Message']}")
        with self._lock:
            last, earlier = self._kept.get(ce, ({}, {}))
        made: dict[str, tuple[PilotRow, PilotRecord]] = {}
        records: dict[str, PilotRecord] = {}
        for row in result["Value"]:
            reference = row[0]
            before = last.get(reference) or earlier.get(reference)
            if before is not None and before[0] == row:
                record = before[1]
            else:
                record = PilotRecord(
                    reference=reference,
                    status=row[1],
                    last_update=aware(pilot_time(row[2])),
                    submitted=aware(pilot_time(row[3])),
                    job_id=row[4],
                )
            records[reference] = record
            made[reference] = (row, record)
        with self._lock:
            self._kept[ce] = (made, self._kept.get(ce, ({},))[0])
        return records

    def set_status(self, reference: str, status: str, reason: str):
        return self.store.setPilotStatus(reference, status, None, reason)
