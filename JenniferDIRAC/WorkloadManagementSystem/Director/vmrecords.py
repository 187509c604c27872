"""What a VMDirector cycle reads from and writes to VMDB for one CE, besides the decision's actions."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from JenniferDIRAC.Resources.Cloud.model import VM, VMState
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import BootstrapRecord, VMRecord


#: An incremental read asks for the rows changed since the last read's time less this: a row's
#: change time is its statement's start, and its transaction may commit a little later. A row
#: committed later still, or purged, is caught by the check of every incremental read (the count
#: of the CE's wanted rows and the sum of their change stamps): a full read follows at once.
CHANGE_MARGIN = dt.timedelta(seconds=10)
#: A CE's rows are all read again after this many incremental reads (and after any error).
FULL_READ_EVERY = 30


@dataclass(slots=True)
class _Kept:
    """One kept row: its change stamp (VMDB's CHANGE_STAMP), its record, its place in a full read."""

    stamp: int
    record: VMRecord
    order: tuple  # (deleted, -created, name): getVMChanges' full read order

    @classmethod
    def of_row(cls, row: dict) -> _Kept:
        record = VMRecord.from_record(row)  # reads the naive times as UTC
        order = (record.deleted is not None, -record.created.timestamp(), record.vm_name)
        return cls(row["changed_us"], record, order)


@dataclass(slots=True)
class _CERead:
    """What a CE's reads kept: its wanted rows, when to ask changes from, the sum of their stamps."""

    rows: dict[str, _Kept]
    since: dt.datetime
    stamps: int
    incremental_reads: int = 0
    records: dict[str, VMRecord] = field(default_factory=dict)  # the last read's answer, in order


#: what a CE's last read through getVMRows kept: {VM name: (its row's values, its record)}
_RowsRead = dict[str, tuple[tuple, VMRecord]]


class KeptRecords:
    """The VMRecords of each CE's last read, by VM name with the row they were made of: a row
    read again unchanged (most of a steady cycle's 5,000) gives back the same (frozen) record
    instead of a new one with its times made aware again. With a client that reads changes
    (getVMChanges), a CE's next reads ask only the rows changed since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: CE -> what its last read kept: a _CERead (getVMChanges) or a _RowsRead (getVMRows)
        self._reads: dict[str, _CERead | _RowsRead] = {}

    def last(self, ce: str) -> _CERead | _RowsRead | None:
        with self._lock:
            return self._reads.get(ce)

    def keep(self, ce: str, read: _CERead | _RowsRead | None) -> None:
        with self._lock:
            if read is None:
                self._reads.pop(ce, None)
            else:
                self._reads[ce] = read


def vm_records(client, ce: str, kept: KeptRecords | None = None) -> dict[str, VMRecord]:
    """The CE's live VM records and the ended ones not yet accounted, by VM name (the live
    first, each group newest first); `kept`: the records of unchanged rows are the last read's,
    and, with a client that reads changes, only the rows changed since the last read are read
    (its answer is what reading them all gives: checked on every read). A client without
    getVMChanges, or whose getVMChanges answers an error (a VMManager service older than it),
    reads every row through getVMRows."""
    last = kept.last(ce) if kept is not None else None
    if kept is not None and hasattr(client, "getVMChanges"):
        read = last if isinstance(last, _CERead) else None
        if read is not None:  # merged into in place: an error, whatever it is, makes the next read a full one
            kept.keep(ce, None)
        try:
            read = _read_through_changes(client, ce, read)
        except _ChangesUnread:
            pass
        else:
            kept.keep(ce, read)
            return dict(read.records)
    records, rows = _read_all_rows(client, ce, last if isinstance(last, dict) else {})
    if kept is not None:
        kept.keep(ce, rows)
    return records


def _read_through_changes(client, ce: str, last: _CERead | None) -> _CERead:
    """The CE's read through getVMChanges: its changes since `last` merged into it, a full read
    when there is no last read, it is FULL_READ_EVERY incremental reads old or the merge is not
    the database's rows."""
    if last is not None and last.incremental_reads < FULL_READ_EVERY:
        if _read_changes(client, ce, last) is not None:
            return last
    return _read_full(client, ce, last)


class _ChangesUnread(Exception):
    """getVMChanges answered an error."""


def _changes(client, ce: str, since: dt.datetime | None) -> dict:
    result = client.getVMChanges(ce, since)
    if not result["OK"]:
        raise _ChangesUnread(result["Message"])
    return result["Value"]


def _read_full(client, ce: str, last: _CERead | None) -> _CERead:
    """Every wanted row of the CE, the records of unchanged ones the last read's."""
    value = _changes(client, ce, None)
    before = last.rows if last is not None else {}
    rows = {}
    for row in value["rows"]:
        name = row["vm_name"]
        kept = before.get(name)
        rows[name] = kept if kept is not None and kept.stamp == row["changed_us"] else _Kept.of_row(row)
    records = {name: kept.record for name, kept in rows.items()}
    return _CERead(rows, value["now"] - CHANGE_MARGIN, value["stamps"], 0, records)


def _read_changes(client, ce: str, last: _CERead) -> dict[str, VMRecord] | None:
    """The rows changed since `last`'s read merged into it (changed in place); None when the
    merged rows are not the database's (a full read must follow)."""
    value = _changes(client, ce, last.since)
    rows, total, reordered, changed = last.rows, last.stamps, False, False
    for row in value["rows"]:
        name = row["vm_name"]
        before = rows.get(name)
        if row["deleted"] is not None and row["accounted"]:  # no longer read (a deleted row is ended)
            if before is not None:
                del rows[name]
                total -= before.stamp
                reordered = True
            continue
        if before is not None:
            if before.stamp == row["changed_us"]:
                continue
            total -= before.stamp
        now_kept = _Kept.of_row(row)
        rows[name] = now_kept
        total += now_kept.stamp
        changed = True
        reordered = reordered or before is None or before.order != now_kept.order
    last.since = value["now"] - CHANGE_MARGIN
    last.incremental_reads += 1
    last.stamps = total
    if len(rows) != value["count"] or total != value["stamps"]:
        return None
    if reordered:
        order = sorted(rows.values(), key=_order)
        last.records = {kept.record.vm_name: kept.record for kept in order}
    elif changed:
        last.records = {name: rows[name].record for name in last.records}
    return last.records


def _order(kept: _Kept) -> tuple:
    return kept.order


def _read_all_rows(client, ce: str, last: _RowsRead) -> tuple[dict[str, VMRecord], _RowsRead]:
    """Every wanted row through getVMRows, the records of rows unchanged since `last` its ones;
    and what to keep of this read."""
    records = {}
    made: _RowsRead = {}
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
    return records, made


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
