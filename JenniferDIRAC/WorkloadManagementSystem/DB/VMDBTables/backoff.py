"""``VMBackoff``: the stored state of each queue's backoff state machine (one row per CE and
profile; no row: the queue is open).

The SQL only stores: every change reads the row, asks ``Lifecycle.StateMachine.transition``
for the next state and writes it back with a compare-and-set on the row it read (the UPDATE or
DELETE matches the read values; an INSERT of a missing row does nothing when another process
inserted it first). When the row changed in between, the read and the decision are made again,
so concurrent CEs and VMDirectors never lose a failure nor claim two probes.
"""

from __future__ import annotations

import datetime as dt

from DIRAC import S_ERROR, S_OK

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

#: Reads and decisions made again when other processes keep changing the row (each retry means
#: another writer succeeded, so this bounds a writer's wait by the number of contenders).
MAX_ATTEMPTS = 200

_STATE_COLUMNS = ("`Until`", "`Reason`", "`Failures`", "`Probe`", "`ProbeVM`", "`ProbeStarted`")
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


class Backoffs:
    """The methods of ``VMBackoff`` (mixed into VMDB: ``self`` is a DIRAC DB)."""

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
        return self.getBackoff(ce, profile or "")

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
        return S_OK(result["Value"] == 1)

    def releaseProbe(self, ce: str, profile: str = ""):
        """The probe VM ended without passing: allow another probe (the backoff stays).
        S_OK(rows changed)."""
        return self._backoffTransition("releaseProbe", ReleaseProbe(ce, profile or ""))

    def clearBackoff(self, ce: str, profile: str = ""):
        """End the backoff of (CE, profile): a VM passed the fizzle time. S_OK(rows removed)."""
        return self._backoffTransition("clearBackoff", ClearBackoff(ce, profile or ""))

    def _backoffTransition(self, method: str, event):
        """Apply `event` to the stored state of its queue. S_OK(rows written: 0 or 1)."""
        try:
            check_text("ce", event.ce)
            check_text("profile", event.profile)
        except RecordError as exc:
            return S_ERROR(f"{method}: {exc}")
        key = (event.ce, event.profile)
        for _ in range(MAX_ATTEMPTS):
            result = self._query(
                f"SELECT {', '.join(_STATE_COLUMNS)} FROM VMBackoff WHERE `CE` = %s AND `Profile` = %s", args=key
            )
            if not result["OK"]:
                return result
            row = tuple(result["Value"][0]) if result["Value"] else None
            stored = _state(*key, row)
            step: Transition = transition(stored, event, aware(utc_now()))
            if step.refused or step.state == stored:
                return S_OK(0)
            result = self._compareAndSet(key, row, step.state)
            if not result["OK"]:
                return result
            if result["Value"] == 1:
                return S_OK(1)
        return S_ERROR(f"{method}: the backoff of {key} kept changing under this write ({MAX_ATTEMPTS} attempts)")

    def _compareAndSet(self, key: tuple[str, str], row: tuple | None, new: BackoffState | None):
        """Write `new` over the stored `row` (None: no row) only if the row is still as it was read."""
        if row is None:
            return self._update(
                f"INSERT INTO VMBackoff (`CE`, `Profile`, {', '.join(_STATE_COLUMNS)}, `Updated`) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE `CE` = `CE`",
                args=(*key, *_values(new)),
            )
        unchanged = " AND ".join(f"{column} <=> %s" for column in _STATE_COLUMNS)
        if new is None:
            return self._update(
                f"DELETE FROM VMBackoff WHERE `CE` = %s AND `Profile` = %s AND {unchanged}", args=(*key, *row)
            )
        assignments = ", ".join(f"{column} = %s" for column in _STATE_COLUMNS)
        return self._update(
            f"UPDATE VMBackoff SET {assignments}, `Updated` = UTC_TIMESTAMP() "
            f"WHERE `CE` = %s AND `Profile` = %s AND {unchanged}",
            args=(*_values(new), *key, *row),
        )
