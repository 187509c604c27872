"""VMDB's ``VMs`` table: one row per VM name, from the CE's record at creation to deletion.

Every statement is parametrised; no value is ever formatted into SQL text. Times are stored and
returned as naive UTC datetimes (DIRAC's convention); aware datetimes are converted on input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import (
    CHANGE_STAMP,
    CHANGED_COLUMN,
    FAILURE_KINDS,
    LIMITS,
    RECORD_KEYS,
    RUNNING_STATE,
    TERMINAL_STATES,
    UTC_STATEMENT,
    VM_COLUMNS,
    VM_KEYS,
    VM_SELECT,
)
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import (
    RecordError,
    check_names,
    check_text,
    chunks,
    utc_now,
    placeholders,
    utc_naive,
)


@dataclass
class _Transaction:
    """What ``VMRecords._transaction()`` yields: a connection in a transaction, or the S_ERROR why
    there is none."""

    conn: object = None
    error: dict | None = None
    failed: dict | None = None  # the S_ERROR of the statement that failed: the transaction rolls back

    def rollback(self, result: dict) -> dict:
        """Roll the transaction back when the block ends, for the failed `result` (returned)."""
        self.failed = result
        return result


class VMRecords:
    """The methods of ``VMs`` (mixed into VMDB: ``self`` is a DIRAC DB)."""

    def recordVMs(self, records: list[dict]):
        """Record VMs at creation. Recording the same name again updates the creation fields
        (the CE may learn the cloud id only after the create call), never the lifecycle ones.
        A new record's state time is its ``created`` (the caller's clock, else now)."""
        try:
            rows = [normalise_record(record) for record in records]
        except (RecordError, TypeError) as exc:
            return S_ERROR(f"recordVMs: {exc}")
        if not rows:
            return S_OK(0)
        columns = ", ".join(f"`{dict(_col_map())[key]}`" for key in RECORD_KEYS)
        updates = ", ".join(
            f"`{col}` = IF(VALUES(`{col}`) = '', `{col}`, VALUES(`{col}`))"
            if key not in ("cores", "ram_mb", "created")
            else f"`{col}` = IF(VALUES(`{col}`) = 0, `{col}`, VALUES(`{col}`))"
            for key, col in _col_map()
            if key in RECORD_KEYS and key not in ("vm_name", "created")
        )
        # One multi-row INSERT per chunk (plain %s placeholders let MySQLdb batch them).
        cmd = (
            f"INSERT INTO VMs ({columns}, `CloudStateTime`) VALUES ({placeholders(len(RECORD_KEYS) + 1)}) "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )
        created = RECORD_KEYS.index("created")
        result = self._manyInTransaction(cmd, [(*row, row[created]) for row in rows])
        if not result["OK"]:
            return result
        return S_OK(len(rows))

    def _manyInTransaction(self, cmd: str, rows: list[tuple]):
        """Run ``cmd`` for every row, in chunks, all in one transaction (one commit, not one per row)."""
        with self._transaction() as tx:
            if tx.error is not None:
                return tx.error
            for chunk in chunks(rows):
                result = self._updatemany(cmd, chunk, conn=tx.conn)
                if not result["OK"]:
                    return tx.rollback(result)
        return S_OK()

    def _statementsInTransaction(self, statements: list[tuple[str, list]]):
        """Run each (cmd, args), all in one transaction."""
        with self._transaction() as tx:
            if tx.error is not None:
                return tx.error
            for cmd, args in statements:
                result = self._update(cmd, args=args, conn=tx.conn)
                if not result["OK"]:
                    return tx.rollback(result)
        return S_OK()

    @contextmanager
    def _transaction(self) -> Iterator[_Transaction]:
        """A connection with a transaction started, for the statements of the ``with`` block:
        committed when the block ends, rolled back when a statement failed (``tx.rollback``) or
        the block raised. No transaction (``tx.error``, the block returns it) when there is no
        connection or it cannot start one."""
        tx = self._start(("START TRANSACTION",), "a transaction")
        if tx.error is not None:
            yield tx
            return
        conn = tx.conn
        try:
            yield tx
        except BaseException:
            conn.rollback()
            raise
        if tx.failed is not None:
            conn.rollback()
        else:
            conn.commit()

    def setVMStates(self, states: Mapping, when: dt.datetime | None = None):
        """Record what the cloud says of each VM: ``{vm_name: state}`` or
        ``{vm_name: {"state": s, "fault": text, "started": dt, "ended": dt, "vm_id": id}}``.

        ``Started`` is set the first time a VM is seen ACTIVE (or from ``started``),
        ``Ended`` the first time it is seen SHUTOFF or ERROR (or from ``ended``); neither is
        moved once set. Unknown names are ignored; S_OK(number of known VMs updated)."""
        when = utc_naive(when) if when else utc_now()
        rows = []
        for name, value in states.items():
            try:
                check_text("vm_name", name, required=True)
                info = {"state": value} if isinstance(value, str) else dict(value)
                state = check_text("cloud_state", info.get("state"), required=True)
                fault = (info.get("fault") or "")[: LIMITS["fault"]]
                started = utc_naive(info.get("started")) or (when if state == RUNNING_STATE else None)
                ended = utc_naive(info.get("ended")) or (when if state in TERMINAL_STATES else None)
                vm_id = check_text("vm_id", info.get("vm_id"))
            except (RecordError, TypeError, ValueError) as exc:
                return S_ERROR(f"setVMStates: VM {name!r}: {exc}")
            rows.append((state, when, state, fault, fault, started, ended, vm_id, vm_id, name))
        if not rows:
            return S_OK(0)
        # a steady cycle reports thousands of VMs, few of them changed: write only those
        result = self._recordedStates([row[-1] for row in rows])
        if not result["OK"]:
            return result
        recorded = result["Value"]
        rows = [row for row in rows if row[-1] in recorded and _changes(recorded[row[-1]], row)]
        known = len(recorded)
        if not rows:
            return S_OK(known)
        # one UPDATE per chunk of VMs (a CASE on the name per column), not one per VM: a first
        # cycle changes hundreds. Single-table, so the assignments run in order (CloudStateTime
        # reads the CloudState before it is set).
        statements = []
        for chunk in chunks(rows):
            state, stateArgs = _by_name([(r[-1], r[2]) for r in chunk])
            fault, faultArgs = _by_name([(r[-1], r[3]) for r in chunk])
            started, startedArgs = _by_name([(r[-1], r[5]) for r in chunk])
            ended, endedArgs = _by_name([(r[-1], r[6]) for r in chunk])
            vmId, vmIdArgs = _by_name([(r[-1], r[7]) for r in chunk])
            names = [r[-1] for r in chunk]
            cmd = (
                f"UPDATE VMs SET `CloudStateTime` = IF(`CloudState` = {state}, `CloudStateTime`, %s), "
                f"`CloudState` = {state}, `Fault` = COALESCE(NULLIF({fault}, ''), `Fault`), "
                f"`Started` = COALESCE(`Started`, {started}), `Ended` = COALESCE(`Ended`, {ended}), "
                f"`VMID` = COALESCE(NULLIF({vmId}, ''), `VMID`) "
                f"WHERE `VMName` IN ({placeholders(len(names))})"
            )
            args = [*stateArgs, when, *stateArgs, *faultArgs, *startedArgs, *endedArgs, *vmIdArgs, *names]
            statements.append((cmd, args))
        result = self._statementsInTransaction(statements)
        if not result["OK"]:
            return result
        return S_OK(known)

    def _recordedStates(self, names: list[str]):
        """{vm_name: (CloudState, Fault, Started, Ended, VMID)} of the recorded VMs among names."""
        recorded = {}
        for chunk in chunks(sorted(set(names))):
            result = self._query(
                "SELECT `VMName`, `CloudState`, `Fault`, `Started`, `Ended`, `VMID` FROM VMs "
                f"WHERE `VMName` IN ({placeholders(len(chunk))})", args=chunk
            )
            if not result["OK"]:
                return result
            recorded.update((row[0], tuple(row[1:])) for row in result["Value"])
        return S_OK(recorded)

    def markVMsDeleted(self, names, reason: str = "", when: dt.datetime | None = None):
        """Mark VMs deleted. ``names`` is a list (one ``reason`` for all) or ``{name: reason}``
        or, for VMs the CE could not create, ``{name: {"reason": text, "failure_kind": kind}}``
        (kind: a FailureKind value, what the policy reads; the reason is for people).
        The first deletion wins: a VM already marked keeps its time, reason and kind."""
        when = utc_naive(when) if when else utc_now()
        try:
            if isinstance(names, Mapping):
                rows = [(check_text("vm_name", n, True), *_reason_and_kind(r, reason)) for n, r in names.items()]
            else:
                rows = [(n, str(reason or ""), "") for n in check_names(names)]
        except RecordError as exc:
            return S_ERROR(f"markVMsDeleted: {exc}")
        if not rows:
            return S_OK(0)
        limit = LIMITS["delete_reason"]
        rows = list({n: (n, r, k) for n, r, k in rows}.values())  # a name given twice: its last reason
        # one UPDATE per chunk of VMs, not one per VM (a first cycle deletes hundreds); the
        # assignments run in order: the reason and kind are set only while Deleted is unset
        statements = []
        for chunk in chunks(rows):
            reason, reasonArgs = _by_name([(n, r[:limit]) for n, r, _ in chunk])
            kind, kindArgs = _by_name([(n, k) for n, _, k in chunk])
            names = [n for n, _, _ in chunk]
            cmd = (
                f"UPDATE VMs SET `DeleteReason` = IF(`Deleted` IS NULL, {reason}, `DeleteReason`), "
                f"`FailureKind` = IF(`Deleted` IS NULL, {kind}, `FailureKind`), "
                "`Ended` = COALESCE(`Ended`, %s), `Deleted` = COALESCE(`Deleted`, %s) "
                f"WHERE `VMName` IN ({placeholders(len(names))})"
            )
            statements.append((cmd, [*reasonArgs, *kindArgs, when, when, *names]))
        result = self._statementsInTransaction(statements)
        if not result["OK"]:
            return result
        return self._countExisting([n for n, _, _ in rows])

    def getVMs(
        self,
        ce=None,
        names=None,
        active_only: bool = False,
        states=None,
        site=None,
        vo=None,
        pilot_references=None,
        unaccounted_only: bool = False,
        limit: int | None = None,
    ):
        """VMs as dicts (keys: ``VM_COLUMNS``), newest first. ``ce``, ``site``, ``vo``,
        ``states`` (cloud states), ``names`` and ``pilot_references`` take a value or a list;
        ``active_only`` leaves out deleted VMs; ``unaccounted_only`` keeps ended, unaccounted ones."""
        conditions, args = [], []
        for column, value in (
            ("CE", ce),
            ("VMName", names),
            ("CloudState", states),
            ("Site", site),
            ("VO", vo),
            ("PilotReference", pilot_references),
        ):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            if not all(isinstance(v, str) for v in values):
                return S_ERROR(f"getVMs: filter on {column} must be strings")
            if not values:
                return S_OK([])
            conditions.append(f"`{column}` IN ({placeholders(len(values))})")
            args.extend(values)
        if active_only:
            conditions.append("`Deleted` IS NULL")
        if unaccounted_only:
            conditions.append("`Accounted` = 0 AND (`Ended` IS NOT NULL OR `Deleted` IS NOT NULL)")
        cmd = f"SELECT {VM_SELECT} FROM VMs"
        if conditions:
            cmd += " WHERE " + " AND ".join(conditions)
        cmd += " ORDER BY `Created` DESC, `VMName`"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                return S_ERROR("getVMs: limit must be a non-negative integer")
            cmd += " LIMIT %s"
            args.append(limit)
        result = self._query(cmd, args=args or None)
        if not result["OK"]:
            return result
        return S_OK([_vm_dict(row) for row in result["Value"]])

    def getVMChanges(self, ce: str, since: dt.datetime | None = None):
        """One CE's VM rows as a reader that keeps them between reads needs them, all read in one
        consistent snapshot: S_OK({"now": the database's UTC time at the snapshot (naive, with
        microseconds), "rows": [...], "count": n, "stamps": s}).

        ``since`` None: the rows ``vm_records`` reads (live, or ended or deleted and not
        accounted: ``WANTED``), the live first, each group newest first. ``since`` a naive UTC
        datetime (an earlier "now" less a margin): every row of the CE changed at or after it,
        wanted or not. Each row is a getVMs dict plus ``changed_us`` (CHANGE_STAMP: every change
        moves it); ``count`` and ``stamps`` are the number of the wanted rows of the snapshot
        and the sum of their stamps, for the reader to check that what it merged is what a full
        read gives (a row purged, or changed in a transaction that committed later than its
        time less the margin, shows as a difference)."""
        try:
            check_text("ce", ce, required=True)
            if since is not None and not isinstance(since, dt.datetime):
                raise TypeError(f"since must be a datetime, not {type(since).__name__}")
            since = _utc_naive_exact(since)
        except (RecordError, TypeError) as exc:
            return S_ERROR(f"getVMChanges: {exc}")
        select = f"SELECT {VM_SELECT}, {CHANGE_STAMP} FROM VMs"
        with self._snapshot() as snapshot:
            if snapshot.error is not None:
                return snapshot.error
            conn = snapshot.conn
            result = self._query("SELECT UTC_TIMESTAMP(6)", conn=conn)
            if not result["OK"]:
                return result
            now = result["Value"][0][0]
            if since is None:
                result = self._query(
                    f"{select} WHERE `CE` = %s AND ({WANTED}) "
                    "ORDER BY `Deleted` IS NOT NULL, `Created` DESC, `VMName`",
                    args=(ce,), conn=conn,
                )
            else:
                result = self._query(
                    f"{UTC_STATEMENT}{select} WHERE `CE` = %s AND `{CHANGED_COLUMN}` >= %s",
                    args=(ce, since), conn=conn,
                )
            if not result["OK"]:
                return result
            rows = [_vm_dict_with_stamp(row) for row in result["Value"]]
            if since is None:
                count, stamps = len(rows), sum(row["changed_us"] for row in rows)
            else:
                # the wanted rows as two disjoint ranges: the live, the deleted not accounted
                result = self._query(
                    f"SELECT COUNT(*), COALESCE(SUM(`s`), 0) FROM ("
                    f"SELECT {CHANGE_STAMP} AS `s` FROM VMs WHERE `CE` = %s AND `Deleted` IS NULL UNION ALL "
                    f"SELECT {CHANGE_STAMP} FROM VMs WHERE `CE` = %s AND `Deleted` IS NOT NULL AND `Accounted` = 0"
                    ") AS `wanted`",
                    args=(ce, ce), conn=conn,
                )
                if not result["OK"]:
                    return result
                count, stamps = int(result["Value"][0][0]), int(result["Value"][0][1])
        return S_OK({"now": now, "rows": rows, "count": count, "stamps": stamps})

    @contextmanager
    def _snapshot(self) -> Iterator[_Transaction]:
        """A connection in a read-only REPEATABLE READ transaction with its consistent snapshot
        taken: every statement of the ``with`` block reads the same committed state (no snapshot:
        ``snapshot.error``, as ``_transaction``)."""
        snapshot = self._start(
            ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
             "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"),
            "a read snapshot",
        )
        if snapshot.error is not None:
            yield snapshot
            return
        try:
            yield snapshot
        finally:
            try:
                snapshot.conn.rollback()  # it changed nothing: ends the snapshot
            except Exception:  # a broken connection: the pool replaces it next time
                pass  # nosec B110

    def _start(self, statements: tuple[str, ...], what: str) -> _Transaction:
        """A connection from DIRAC's pool with `statements` (which start `what`) run on it:
        ``_Transaction(conn=...)``, or ``_Transaction(error=...)`` when there is no connection or
        a statement fails."""
        result = self._getConnection()
        if not result["OK"]:
            return _Transaction(error=result)
        conn = result["Value"]
        try:
            cursor = conn.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
        except Exception as exc:  # the connection is broken: DIRAC's pool replaces it next time
            return _Transaction(error=S_ERROR(f"VMDB: cannot start {what}: {exc!r}"))
        return _Transaction(conn=conn)

    def _countExisting(self, names: list[str]):
        total = 0
        for chunk in chunks(sorted(set(names))):
            result = self._query(
                f"SELECT COUNT(*) FROM VMs WHERE `VMName` IN ({placeholders(len(chunk))})", args=chunk
            )
            if not result["OK"]:
                return result
            total += int(result["Value"][0][0])
        return S_OK(total)

    def _requireVM(self, vm_name: str):
        try:
            check_text("vm_name", vm_name, required=True)
        except RecordError as exc:
            return S_ERROR(str(exc))
        result = self._countExisting([vm_name])
        if not result["OK"]:
            return result
        if not result["Value"]:
            return S_ERROR(f"unknown VM {vm_name!r}")
        return S_OK()


def normalise_record(record: Mapping) -> tuple:
    """The INSERT values of one creation record, validated; raises RecordError naming the field."""
    if not isinstance(record, Mapping):
        raise RecordError(f"a VM record must be a dict, not {type(record).__name__}")
    unknown = set(record) - set(RECORD_KEYS)
    if unknown:
        raise RecordError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))} in VM record")
    values = []
    for key in RECORD_KEYS:
        value = record.get(key)
        if key in ("cores", "ram_mb"):
            if value is None:
                value = 0
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RecordError(f"field {key!r} must be a non-negative integer")
        elif key == "created":
            value = utc_naive(value) if value is not None else utc_now()
        else:
            value = check_text(key, value, required=key in ("vm_name", "ce"))
        values.append(value)
    return tuple(values)


def _by_name(pairs: list[tuple[str, object]]) -> tuple[str, list]:
    """SQL choosing each row's value by its VM name (``CASE `VMName` WHEN .. THEN .. END``) and
    its arguments, for one UPDATE of many VMs."""
    sql = "CASE `VMName` " + " ".join(["WHEN %s THEN %s"] * len(pairs)) + " END"
    return sql, [value for pair in pairs for value in pair]


def _changes(recorded: tuple, row: tuple) -> bool:
    """Whether setVMStates' UPDATE `row` would change the `recorded` (state, fault, started,
    ended, vm id) of its VM: the same rules as the UPDATE's IF and COALESCE."""
    state, fault, started, ended, vm_id = recorded
    new_state, new_fault, new_started, new_ended, new_id = row[2], row[3], row[5], row[6], row[7]
    return (
        new_state != state
        or (new_fault != "" and new_fault != (fault or ""))
        or (started is None and new_started is not None)
        or (ended is None and new_ended is not None)
        or (new_id != "" and new_id != (vm_id or ""))
    )



def _reason_and_kind(value, default_reason: str) -> tuple[str, str]:
    """(reason, failure kind) of one markVMsDeleted value: a reason, or {"reason", "failure_kind"}."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"reason", "failure_kind"}
        if unknown:
            raise RecordError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))} in a deletion")
        kind = value.get("failure_kind") or ""
        kind = getattr(kind, "value", kind)  # a FailureKind member or its value
        if kind and kind not in FAILURE_KINDS:
            raise RecordError(f"field 'failure_kind' must be one of {', '.join(sorted(FAILURE_KINDS))}, not {kind!r}")
        return str(value.get("reason") or default_reason or ""), kind
    return str(value or default_reason or ""), ""


def _col_map() -> list[tuple[str, str]]:
    return [(key, col) for key, col, _ in VM_COLUMNS]


#: The rows a VMDirector cycle reads of a CE (``getVMChanges``): live, or ended or deleted and not
#: accounted (getVMs' ``active_only`` and ``unaccounted_only`` together).
WANTED = "`Deleted` IS NULL OR (`Accounted` = 0 AND (`Ended` IS NOT NULL OR `Deleted` IS NOT NULL))"


def _utc_naive_exact(value: dt.datetime | None) -> dt.datetime | None:
    """utc_naive keeping the microseconds (a time read from the database, given back)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _vm_dict_with_stamp(row: tuple) -> dict:
    vm = _vm_dict(row[:-1])
    vm["changed_us"] = int(row[-1])
    return vm


def _vm_dict(row: tuple) -> dict:
    vm = dict(zip(VM_KEYS, row))
    vm["accounted"] = bool(vm["accounted"])
    vm["cores"] = int(vm["cores"])
    vm["ram_mb"] = int(vm["ram_mb"])
    return vm
