"""``VMBackoff``: the stored state of each queue's backoff state machine (one row per CE and
profile; no row: the queue is open).

The SQL only stores: every change reads the row, asks ``Lifecycle.StateMachine.transition`` for
the next state and writes it back with a compare-and-set on the row it read (the UPDATE or
DELETE matches the read values; an INSERT of a missing row does nothing when another process
inserted it first). When the row changed in between, the read and the decision are made again,
the row locked from read to write (concurrent writers queue up), so concurrent CEs and
VMDirectors never lose a failure nor claim two probes. Threads of one process that change one
row at once do it in one turn (rowturns.py): one read, each change decided in order, one write.
The row this process last read or wrote is remembered: a change decided on it is written with
the same compare-and-set without reading first (one statement), and the row is read only when
that write finds it changed or the decision changes nothing (which a write cannot confirm).
"""

from __future__ import annotations

import datetime as dt

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.rowturns import RowTurns
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import RecordError, check_text, utc_naive, utc_now
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (
    BackoffState,
    ClaimProbe,
    ClearBackoff,
    ReleaseProbe,
    StartBackoff,
    Transition,
    aware,
    transition,
)

#: Reads and decisions made again when the row keeps changing (after the first conflict the row
#: is locked, so a retry is needed only when another process inserted the missing row first).
MAX_ATTEMPTS = 200

_STATE_COLUMNS = ("`Until`", "`Reason`", "`Failures`", "`Probe`", "`ProbeVM`", "`ProbeStarted`")
_UNCHANGED = " AND ".join(f"{column} <=> %s" for column in _STATE_COLUMNS)
_SELECT = f"SELECT {', '.join(_STATE_COLUMNS)} FROM VMBackoff WHERE `CE` = %s AND `Profile` = %s"
_INSERT = (
    f"INSERT INTO VMBackoff (`CE`, `Profile`, {', '.join(_STATE_COLUMNS)}, `Updated`) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE `CE` = `CE`"
)
_UPDATE = (
    f"UPDATE VMBackoff SET {', '.join(f'{column} = %s' for column in _STATE_COLUMNS)}, `Updated` = %s "
    f"WHERE `CE` = %s AND `Profile` = %s AND {_UNCHANGED}"
)
_DELETE = f"DELETE FROM VMBackoff WHERE `CE` = %s AND `Profile` = %s AND {_UNCHANGED}"
#: No row remembered for a queue (a row None is one known to be absent).
_UNREAD = (object(), None)
_KEYS = ("ce", "profile", "until", "reason", "failures", "probe", "probe_vm", "probe_started", "updated")


def _state(ce: str, profile: str, row: tuple | None) -> BackoffState | None:
    if row is None:
        return None
    until, reason, failures, probe, probe_vm, probe_started = row
    return BackoffState(
        ce, profile, aware(until), reason, bool(probe), probe_vm, aware(probe_started), int(failures)
    )


def _values(state: BackoffState) -> tuple:
    return (
        utc_naive(state.until),
        state.reason,
        state.failures,
        1 if state.probe else 0,
        state.probe_vm,
        utc_naive(state.probe_started),
    )


def _row(state: BackoffState | None) -> tuple | None:
    """The row as stored after writing `state` (None: no row)."""
    return None if state is None else _values(state)


def _record(state: BackoffState, updated: dt.datetime) -> dict:
    """A row as getBackoff returns it, from the state just written at `updated` (naive UTC)."""
    until, reason, failures, probe, probe_vm, probe_started = _values(state)
    return {
        "ce": state.ce,
        "profile": state.profile,
        "until": until,
        "reason": reason,
        "failures": failures,
        "probe": bool(probe),
        "probe_vm": probe_vm,
        "probe_started": probe_started,
        "updated": updated,
        "active": until > updated,
    }


def _decide(stored: BackoffState | None, events):
    """The state machine's decision on each event in order, from the `stored` state:
    (state after, the time decided at, [(rows written, state, time)] per event)."""
    state = stored
    now = utc_now()
    outcomes = []
    for event in events:
        step: Transition = transition(state, event, aware(now))
        changed = not step.refused and step.state != state
        if changed:
            state = step.state
        outcomes.append((1 if changed else 0, state, now))
    return state, now, outcomes


class Backoffs:
    """The methods of ``VMBackoff`` (mixed into VMDB: ``self`` is a DIRAC DB)."""

    def __init__(self, *args, **kwargs):
        self._backoffTurns = RowTurns()
        # Each queue's (row, its state) as this process last read or wrote it.
        self._backoffRows: dict[tuple[str, str], tuple[tuple | None, BackoffState | None]] = {}
        super().__init__(*args, **kwargs)

    def getBackoff(self, ce: str, profile: str = ""):
        """S_OK(dict) of the (CE, profile) backoff row, S_OK(None) if there is none.
        The dict has ``ce, profile, until, reason, failures, probe, probe_vm, probe_started,
        updated`` and ``active`` (``until`` still in the future)."""
        result = self.getBackoffs(ce=ce, profile=profile)
        if not result["OK"]:
            return result
        return S_OK(result["Value"][0] if result["Value"] else None)

    def getBackoffs(self, ce=None, profile=None):
        """All backoff rows, optionally for one CE (and profile)."""
        conditions, args = [], []
        for column, value in (("CE", ce), ("Profile", profile)):
            if value is not None:
                if not isinstance(value, str):
                    return S_ERROR(f"getBackoffs: {column} must be a string")
                conditions.append(f"`{column}` = %s")
                args.append(value)
        cmd = (
            "SELECT `CE`, `Profile`, `Until`, `Reason`, `Failures`, `Probe`, `ProbeVM`, `ProbeStarted`, "
            "`Updated`, `Until` > UTC_TIMESTAMP() FROM VMBackoff"
        )
        if conditions:
            cmd += " WHERE " + " AND ".join(conditions)
        cmd += " ORDER BY `CE`, `Profile`"
        result = self._query(cmd, args=args or None)
        if not result["OK"]:
            return result
        rows = []
        for row in result["Value"]:
            entry = dict(zip(_KEYS, row[:-1]))
            entry["failures"] = int(entry["failures"])
            entry["probe"] = bool(entry["probe"])
            entry["active"] = bool(row[-1])
            rows.append(entry)
        return S_OK(rows)

    def setBackoff(self, ce: str, profile: str, until: dt.datetime, reason: str, probe: bool = False):
        """Record a backoff of (CE, profile) (``StartBackoff``); safe from several processes.

        ``until`` never moves backwards (the later of the stored and the new time wins), the
        failure counter goes up by one, ``probe=True`` marks that a probe is in progress.
        S_OK(the row after the update)."""
        try:
            check_text("ce", ce, required=True)
            check_text("profile", profile)
            until = utc_naive(until)
        except (RecordError, TypeError) as exc:
            return S_ERROR(f"setBackoff: {exc}")
        if until is None:
            return S_ERROR("setBackoff: until is required")
        start = StartBackoff(ce, profile or "", aware(until), str(reason or "")[:512], bool(probe))
        result = self._backoffTransition("setBackoff", start)
        if not result["OK"]:
            return result
        _, state, updated = result["Value"]
        return S_OK(_record(state, updated))

    def claimProbe(self, ce: str, profile: str, vm_name: str):
        """Make ``vm_name`` the one probe VM of an ended backoff (``ClaimProbe``).
        S_OK(True) if this caller got the probe slot, S_OK(False) if the backoff is still running,
        another probe is in progress, or there is no backoff (then no probe is needed)."""
        try:
            check_text("ce", ce, required=True)
            check_text("profile", profile)
            check_text("vm_name", vm_name, required=True)
        except RecordError as exc:
            return S_ERROR(f"claimProbe: {exc}")
        result = self._backoffTransition("claimProbe", ClaimProbe(ce, profile or "", vm_name))
        if not result["OK"]:
            return result
        return S_OK(result["Value"][0] == 1)

    def releaseProbe(self, ce: str, profile: str = ""):
        """The probe VM ended without passing: allow another probe (the backoff stays).
        S_OK(rows changed)."""
        result = self._backoffTransition("releaseProbe", ReleaseProbe(ce, profile or ""))
        return S_OK(result["Value"][0]) if result["OK"] else result

    def clearBackoff(self, ce: str, profile: str = ""):
        """End the backoff of (CE, profile): a VM passed the fizzle time. S_OK(rows removed)."""
        result = self._backoffTransition("clearBackoff", ClearBackoff(ce, profile or ""))
        return S_OK(result["Value"][0]) if result["OK"] else result

    def _backoffTransition(self, method: str, event):
        """Apply `event` to the stored state of its queue, in one turn with the events other
        threads of this process apply to it at the same moment. S_OK((rows written: 0 or 1, the
        state after it, the time written))."""
        try:
            check_text("ce", event.ce)
            check_text("profile", event.profile)
        except RecordError as exc:
            return S_ERROR(f"{method}: {exc}")
        key = (event.ce, event.profile)
        return self._backoffTurns.change(key, event, lambda events: self._backoffEvents(method, key, events))

    def _backoffEvents(self, method: str, key: tuple[str, str], events):
        """Apply `events`, in order, to the queue's row: one S_OK((rows written, state, time)) per
        event, or its S_ERROR for each. The first read is made without a lock; once the
        compare-and-set saw another writer, the row is locked from read to write, so concurrent
        writers queue up instead of retrying. A change decided on the row remembered from this
        process's last read or write is written without a read; the compare-and-set makes it the
        same as one decided on a fresh read."""
        locked = False
        known, stored = self._backoffRows.pop(key, _UNREAD)  # kept again only after a read or write succeeds
        if known is not _UNREAD[0]:
            state, now, outcomes = _decide(stored, events)
            if state != stored:
                written = _row(state)
                result = self._compareAndSet(key, known, written, now)
                if not result["OK"]:
                    return [result] * len(events)
                if result["Value"] == 1:
                    self._backoffRows[key] = (written, state)
                    return [S_OK(outcome) for outcome in outcomes]
                locked = True  # another writer changed the row since this process last saw it
        for attempt in range(MAX_ATTEMPTS):
            result = self._backoffStep(key, events, locked=locked or attempt > 0)
            if not result["OK"]:
                return [result] * len(events)
            if result["Value"] is not None:
                return [S_OK(outcome) for outcome in result["Value"]]
        error = S_ERROR(f"{method}: the backoff of {key} kept changing under this write ({MAX_ATTEMPTS} attempts)")
        return [error] * len(events)

    def _backoffStep(self, key: tuple[str, str], events, locked: bool):
        """One read of the queue's row, the decision on each event in order and one write.
        S_OK([(rows written, state, time)] per event), or S_OK(None) when the compare-and-set
        found the row changed: read and decide again."""
        conn = None
        if locked:
            result = self._getConnection()
            if not result["OK"]:
                return result
            conn = result["Value"]
            result = self._update("START TRANSACTION", conn=conn)
            if not result["OK"]:
                return result
        try:
            result = self._query(_SELECT + (" FOR UPDATE" if locked else ""), args=key, conn=conn)
            if not result["OK"]:
                return result
            row = tuple(result["Value"][0]) if result["Value"] else None
            stored = _state(*key, row)
            state, now, outcomes = _decide(stored, events)
            if state == stored:
                self._backoffRows[key] = (row, stored)
                return S_OK(outcomes)
            if row is None and conn is not None:
                # No row to lock: end the transaction (its gap lock would deadlock two inserts)
                # and insert only if nobody did meanwhile.
                conn.commit()
                conn = None
            written = _row(state)
            result = self._compareAndSet(key, row, written, now, conn)
            if not result["OK"]:
                return result
            if result["Value"] != 1:
                return S_OK(None)
            self._backoffRows[key] = (written, state)
            return S_OK(outcomes)
        finally:
            if conn is not None:
                try:
                    conn.commit()
                except Exception:  # noqa: BLE001 - a broken connection: DIRAC's pool replaces it next time
                    pass

    def _compareAndSet(self, key: tuple[str, str], row: tuple | None, new: tuple | None, updated, conn=None):
        """Write the row `new` (None: delete) over the stored `row` (None: no row) only if the row
        is still as it was read. S_OK(rows written)."""
        if row is None:
            return self._update(_INSERT, args=(*key, *new, updated))
        if new is None:
            return self._update(_DELETE, args=(*key, *row), conn=conn)
        return self._update(_UPDATE, args=(*new, updated, *key, *row), conn=conn)
