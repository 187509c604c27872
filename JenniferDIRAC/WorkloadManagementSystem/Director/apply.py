"""Applying a decision's pilot statuses, deletions and closed records (backoffs: the agent's
``_applyBackoffs``; accounting: ``accounting.py``).

Pilot statuses go first: a VM whose deletion waits for its pilot's final status is kept while
that status could not be set. Deletions go to the project's DELETE threads (deletions.py), or
in one bulk call of the backend.
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
    deletions=None,
) -> set[str]:
    """Delete the decision's VMs (not those waiting for a pilot status that `failed_pilots`
    lacks) and close their records, dated `when` (None: now); the names of the records closed.
    `deletions`: the project's ProjectDeletions (None: the backend's own bulk call)."""
    deletes = [
        a for a in decision.of_type(DeleteVM) if not (a.after_pilot and a.after_pilot in failed_pilots)
    ]
    if not deletes:
        return set()
    try:
        ids = [a.vm_id for a in deletes]
        errors = deletions.delete(backend, ids) if deletions is not None else backend.delete_vms(ids)
    except CloudError as exc:
        errors = {a.vm_id: str(exc) for a in deletes}
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
