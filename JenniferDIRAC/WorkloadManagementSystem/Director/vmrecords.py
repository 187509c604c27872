"""What a VMDirector cycle reads from and writes to VMDB for one CE, besides the decision's actions."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from JenniferDIRAC.Resources.Cloud.model import VM, VMState
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import BootstrapRecord, VMRecord


class KeptRecords:
    """The VMRecords of each CE's last read, by VM name with the row they were made of: a row
    read again unchanged (most of a steady cycle's 5,000) gives back the same (frozen) record
    instead of a new one with its times made aware again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ce: dict[str, dict[str, tuple[tuple, VMRecord]]] = {}

    def of(self, ce: str) -> dict[str, tuple[tuple, VMRecord]]:
        with self._lock:
            return self._by_ce.get(ce, {})

    def keep(self, ce: str, kept: dict[str, tuple[tuple, VMRecord]]) -> None:
        with self._lock:
            self._by_ce[ce] = kept


def vm_records(client, ce: str, kept: KeptRecords | None = None) -> dict[str, VMRecord]:
    """The CE's live VM records and the ended ones not yet accounted, by VM name; `kept`: the
    records of unchanged rows are the last read's."""
    records = {}
    last = kept.of(ce) if kept is not None else {}
    made: dict[str, tuple[tuple, VMRecord]] = {}
    for query in ({"active_only": True}, {"unaccounted_only": True}):
        result = client.getVMRows(ce=ce, **query)  # VMRecord.from_record reads the naive times as UTC
        if not result["OK"]:
            raise CENotServedThisCycle(f"cannot read VM records: {result['Message']}")
        for row in result["Value"]:
            name = row["vm_name"]
            values = tuple(row.values())
            before = last.get(name)
            if before is not None and before[0] == values:
                record = before[1]
            else:
                record = VMRecord.from_record(row)
            records[name] = record
            made[name] = (values, record)
    if kept is not None:
        kept.keep(ce, made)
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
