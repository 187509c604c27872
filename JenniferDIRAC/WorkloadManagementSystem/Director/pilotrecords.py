"""The pilot records of a CE's VMs, as the lifecycle policy reads them (PilotRecord)."""

from __future__ import annotations

from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import pilot_records, pilot_store
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import aware
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import PILOT_TRANSIENT, PilotRecord


class PilotRecords:
    """Reads and sets pilot records in `store` (default: PilotAgentsDB directly where it is
    configured on this host, PilotManager otherwise)."""

    def __init__(self, store=None):
        self.store = store if store is not None else pilot_store().store

    def records(self, ce: str, references: set[str]) -> dict[str, PilotRecord]:
        """The records of `references` and of every transient pilot sent to `ce`."""
        result = pilot_records(self.store, ce, sorted(PILOT_TRANSIENT), sorted(references))
        if not result["OK"]:
            raise CENotServedThisCycle(f"cannot read pilot records: {result['Message']}")
        records = {}
        for ref, info in result["Value"].items():
            jobs = info.get("Jobs") or []
            records[ref] = PilotRecord(
                reference=ref,
                status=info["Status"],
                last_update=aware(info.get("LastUpdateTime")),
                submitted=aware(info.get("SubmissionTime")),
                job_id=max(jobs) if jobs else 0,
            )
        return records

    def set_status(self, reference: str, status: str, reason: str):
        return self.store.setPilotStatus(reference, status, None, reason)
