"""What a VMDirector cycle reads from and writes to VMDB for one CE, besides the decision's actions."""

from __future__ import annotations

from collections.abc import Iterable

from JenniferDIRAC.Resources.Cloud.model import VM, VMState
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import BootstrapRecord, VMRecord


def vm_records(client, ce: str) -> dict[str, VMRecord]:
    """The CE's live VM records and the ended ones not yet accounted, by VM name."""
    records = {}
    for query in ({"active_only": True}, {"unaccounted_only": True}):
        result = client.getVMRows(ce=ce, **query)  # VMRecord.from_record reads the naive times as UTC
        if not result["OK"]:
            raise CENotServedThisCycle(f"cannot read VM records: {result['Message']}")
        for row in result["Value"]:
            records[row["vm_name"]] = VMRecord.from_record(row)
    return records


def record_states(client, vms: Iterable[VM], records: dict[str, VMRecord], log, when=None) -> None:
    """Tell VMDB what the cloud says of the VMs it knows (start and end times come from it;
    `when`, the cycle's now, dates a state change: None for the database host's clock)."""
    states = {}
    for vm in vms:
        record = records.get(vm.name)
        if record is None or vm.state in (VMState.DELETING, VMState.UNKNOWN) or _recorded(vm, record):
            continue
        info = {"state": vm.state.value, "vm_id": vm.id, "fault": vm.fault}
        if vm.launched:  # the cloud's launch time: right even for a VM never seen ACTIVE
            info["started"] = vm.launched
        if vm.state.is_terminal and vm.updated:
            info["ended"] = vm.updated
        states[vm.name] = info
    if states:
        result = client.setVMStates(states, when)
        if not result["OK"]:
            log.warn("Cannot record VM states", result["Message"])


def _recorded(vm: VM, record: VMRecord) -> bool:
    """Whether the record, as read this cycle, already holds all that setVMStates would write
    of `vm` (its state, id, start and end; a fault is always sent): a steady cycle then sends
    the few VMs that changed, not the thousands listed."""
    return (
        record.cloud_state == vm.state.value
        and not vm.fault
        and (not vm.id or vm.id == record.vm_id)
        and (record.started is not None or (vm.launched is None and vm.state is not VMState.ACTIVE))
        and (record.ended is not None or not vm.state.is_terminal)
    )


def bootstraps(client, records: dict[str, VMRecord]) -> dict[str, BootstrapRecord]:
    """The bootstraps of the recorded VMs created with a contextualization endpoint. Unread, the
    CE is skipped: its failed boots would otherwise pass for pilots that ended."""
    if not records:
        return {}
    result = client.getBootstraps(sorted(records))
    if not result["OK"]:
        raise CENotServedThisCycle(f"cannot read bootstraps: {result['Message']}")
    return BootstrapRecord.from_fetched(result["Value"])


def bootstrap_replayed(client, log) -> frozenset[str]:
    """VMs whose one-time bootstrap token was presented again (VMDB incidents); and the
    wrappers of ended VMs that never fetched theirs are forgotten."""
    client.forgetEndedBootstraps()
    result = client.getBootstrapIncidents()
    if not result["OK"]:
        log.warn("Cannot read bootstrap incidents", result["Message"])
        return frozenset()
    return frozenset(result["Value"])
