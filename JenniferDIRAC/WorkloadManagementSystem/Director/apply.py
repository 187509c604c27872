"""Applying a decision's pilot statuses, deletions and closed records (backoffs: the agent's
``_applyBackoffs``; accounting: ``accounting.py``).

Pilot statuses go first: a VM whose deletion waits for its pilot's final status is kept while
that status could not be set. The deletions that wait for no pilot status are sent as soon as
the decision is made (``SentDeletes``), and run while the VM states and pilot statuses are
written. Deletions go to the project's DELETE threads (deletions.py), or in one bulk call of
the backend.
"""

from __future__ import annotations

from JenniferDIRAC.Resources.Cloud.errors import CloudError
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CEReport
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    Account,
    DeleteVM,
    RecordGone,
    SetPilotStatus,
)


class SentDeletes:
    """The DELETEs sent so far in a CE's cycle; their outcomes are read once (`errors`)."""

    def __init__(self, backend, deletions=None) -> None:
        self._backend, self._deletions = backend, deletions  # deletions: the project's ProjectDeletions
        self.actions: list[DeleteVM] = []
        self._futures: list = []
        self._errors: dict[str, str] = {}

    def send(self, actions: list[DeleteVM]) -> None:
        """Send these deletions: to the project's DELETE threads, at once; without them, in one
        bulk call of the backend, done on return."""
        if not actions:
            return
        self.actions += actions
        ids = [a.vm_id for a in actions]
        if self._deletions is not None:
            self._futures += self._deletions.start(self._backend, ids)
            return
        try:
            self._errors.update(self._backend.delete_vms(ids))
        except CloudError as exc:
            self._errors.update({vm_id: str(exc) for vm_id in ids})

    def errors(self) -> dict[str, str]:
        """{vm_id: error} of the deletions sent that failed, once every one has ended."""
        for future in self._futures:
            self._errors.update(future.result())
        self._futures = []
        return self._errors


def deletes_waiting_for_no_pilot(decision) -> list[DeleteVM]:
    """The decision's deletions that may be sent before any pilot status is set."""
    return [a for a in decision.of_type(DeleteVM) if not a.after_pilot]


def set_pilot_statuses(decision, pilots, report: CEReport, log) -> set[str]:
    """Set the decision's pilot statuses; the references whose status could not be set."""
    failed = set()
    for action in decision.of_type(SetPilotStatus):
        result = pilots.set_status(action.reference, action.status, action.reason)
        if result["OK"]:
            report.pilots_set += 1
        else:
            failed.add(action.reference)
            log.warn("Cannot set pilot status", f"{action.reference}: {result['Message']}")
    return failed


def delete_vms(
    ce: str, backend, decision, failed_pilots: set[str], client, metrics, report: CEReport, log, when=None,
    deletions=None, sent: SentDeletes | None = None,
) -> set[str]:
    """Delete the decision's VMs (not those waiting for a pilot status that `failed_pilots`
    lacks; `sent`: those already under way) and close their records, dated `when` (None: now);
    the names of the records closed. `deletions`: the project's ProjectDeletions (None: the
    backend's own bulk call)."""
    sent = sent if sent is not None else SentDeletes(backend, deletions)
    under_way = {a.vm_id for a in sent.actions}
    sent.send([
        a for a in decision.of_type(DeleteVM)
        if a.vm_id not in under_way and not (a.after_pilot and a.after_pilot in failed_pilots)
    ])
    deletes = sent.actions
    if not deletes:
        return set()
    errors = sent.errors()
    done = [a for a in deletes if a.vm_id not in errors]
    for action in deletes:
        if action.vm_id in errors:
            log.warn("Cannot delete VM", f"{action.vm_name} on {ce}: {errors[action.vm_id]}")
        else:
            log.notice("Deleted VM", f"{action.vm_name} on {ce}: {action.reason}")
    report.deleted, report.delete_failures = len(done), len(deletes) - len(done)
    metrics.deleted(ce, [a.reason for a in done])
    # a twin's name is its kept VM's: the record stays open
    done = [a for a in done if not a.twin]
    if not done:
        return set()
    result = client.markVMsDeleted({a.vm_name: a.reason for a in done}, "", when)
    if not result["OK"]:
        log.warn("Cannot mark VMs deleted", result["Message"])
        return set()
    return {a.vm_name for a in done}


def close_gone_records(decision, client, log, when=None) -> set[str]:
    """Close the records of VMs gone from the cloud, dated `when` (None: now); their names."""
    gone = decision.of_type(RecordGone)
    if not gone:
        return set()
    result = client.markVMsDeleted({a.vm_name: a.reason or "gone from the cloud" for a in gone}, "", when)
    if not result["OK"]:
        log.warn("Cannot close the records of vanished VMs", result["Message"])
        return set()
    return {a.vm_name for a in gone}


def to_account(decision, ended: set[str]) -> set[str]:
    """The VMs to account: those the decision names, once their record is closed when their
    accounting waits for their deletion."""
    return {a.vm_name for a in decision.of_type(Account) if not a.after_delete or a.vm_name in ended}
