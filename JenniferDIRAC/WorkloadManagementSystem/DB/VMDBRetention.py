"""What VMDB keeps of finished VMs, and for how long (applied by the VMDBRetentionAgent).

Without it VMDB grows for ever: a row per VM, up to ``MaxLogBytes`` per log kind and
``MaxHeartbeats`` heartbeats per VM, at thousands of VMs a day. The rules:

- VM rows (with their logs and heartbeats) go ``vm_days`` after the VM was deleted, and only
  once it is accounted: a live VM (not deleted) or one not yet accounted is never touched.
- Logs of deleted VMs go ``log_days`` after the deletion (they are the bulk of the bytes);
  logs and heartbeats left without a VM row (an interrupted purge) go once as old.
- Heartbeats of VMs deleted more than ``heartbeat_compaction_days`` ago are compacted to the
  first, the last and the first of every hour: the shape of the VM's life stays readable.
- VMCapacity rows (a flavor/zone without capacity) go once their memory has ended, in the
  database's clock, whether or not a CE writes to that cloud again.

Everything works in batches of ``batch_size`` VMs, so no statement holds a large lock. The
functions take the ``VMDB`` object (its ``_query``/``_update``) and return S_OK/S_ERROR.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from DIRAC import S_ERROR, S_OK

#: Hour buckets of a heartbeat, independent of the session's time zone.
_HOUR = "TIMESTAMPDIFF(HOUR, '2000-01-01', `HeartbeatTime`)"


@dataclass(frozen=True)
class RetentionPolicy:
    vm_days: float = 90.0
    log_days: float = 30.0
    heartbeat_compaction_days: float = 1.0
    batch_size: int = 1000

    #: (CS option, attribute, minimum); the defaults are in ConfigTemplate.cfg
    OPTIONS = (
        ("VMRetentionDays", "vm_days", 1.0),
        ("LogRetentionDays", "log_days", 1.0),
        ("HeartbeatCompactionDays", "heartbeat_compaction_days", 0.0),
        ("BatchSize", "batch_size", 1),
    )

    @classmethod
    def from_options(cls, get_option: Callable[[str, object], object]) -> "RetentionPolicy":
        """From an agent's options (``am_getOption``); ValueError names a bad option."""
        values = {}
        for option, attribute, minimum in cls.OPTIONS:
            default = getattr(cls, attribute)
            raw = get_option(option, str(default))  # as text: DIRAC casts to the default's type silently
            try:
                value = int(str(raw)) if isinstance(default, int) else float(str(raw))
            except ValueError:
                kind = "an integer" if isinstance(default, int) else "a number of days"
                raise ValueError(f"option {option}: {raw!r} is not {kind}") from None
            if not value >= minimum:  # also refuses NaN
                raise ValueError(f"option {option}: {raw!r} is below the minimum {minimum}")
            values[attribute] = value
        return cls(**values)

    def cutoffs(self, now: dt.datetime) -> dict[str, dt.datetime]:
        """The deletion times before which each rule applies."""
        return {
            "vms": now - dt.timedelta(days=self.vm_days),
            "logs": now - dt.timedelta(days=self.log_days),
            "heartbeats": now - dt.timedelta(days=self.heartbeat_compaction_days),
        }


def apply_retention(db, policy: RetentionPolicy, now: dt.datetime, compacted_until: dt.datetime | None = None):
    """Apply every rule once; S_OK({"vms": rows purged, "logs": ..., "heartbeats": ...,
    "capacity": expired VMCapacity rows removed, "compacted_until": ...}). ``compacted_until`` is
    the previous pass's value: heartbeats of VMs deleted before it are compacted already (None: a full pass, which also looks at every
    deleted VM and for logs and heartbeats left without a VM row)."""
    cutoffs = policy.cutoffs(now)
    full = compacted_until is None
    done = {}
    result = purge_vms(db, cutoffs["vms"], policy.batch_size)
    if not result["OK"]:
        return S_ERROR(f"VMDB retention (vms): {result['Message']}")
    done["vms"] = result["Value"]
    result = purge_logs(db, cutoffs["logs"], policy.batch_size, sweep_orphans=full)
    if not result["OK"]:
        return S_ERROR(f"VMDB retention (logs): {result['Message']}")
    done["logs"] = result["Value"]
    result = compact_heartbeats(db, cutoffs["heartbeats"], policy.batch_size, deleted_since=compacted_until,
                                sweep_orphans=full)
    if not result["OK"]:
        return S_ERROR(f"VMDB retention (heartbeats): {result['Message']}")
    done["heartbeats"] = result["Value"]
    result = db.purgeExpiredCapacity(policy.batch_size)
    if not result["OK"]:
        return S_ERROR(f"VMDB retention (capacity): {result['Message']}")
    done["capacity"] = result["Value"]
    done["compacted_until"] = max(cutoffs["heartbeats"], compacted_until or cutoffs["heartbeats"])
    return S_OK(done)


def purge_vms(db, deleted_before: dt.datetime, batch_size: int = 1000):
    """Remove accounted VMs deleted before ``deleted_before`` with their logs and heartbeats;
    S_OK(number of VM rows removed)."""
    total = 0
    while True:
        result = db._query(
            "SELECT `VMName` FROM VMs WHERE `Deleted` IS NOT NULL AND `Deleted` < %s AND `Accounted` = 1 "
            "LIMIT %s",
            args=(deleted_before, batch_size),
        )
        if not result["OK"]:
            return result
        names = [row[0] for row in result["Value"]]
        if not names:
            return S_OK(total)
        marks = _marks(names)
        for table in _per_vm_tables():
            result = db._update(f"DELETE FROM {table} WHERE `VMName` IN ({marks})", args=names)
            if not result["OK"]:
                return result
        # The conditions again: a row changed since the SELECT stays.
        result = db._update(
            f"DELETE FROM VMs WHERE `VMName` IN ({marks}) AND `Deleted` IS NOT NULL AND `Deleted` < %s "
            "AND `Accounted` = 1",
            args=[*names, deleted_before],
        )
        if not result["OK"]:
            return result
        total += int(result["Value"])
        if len(names) < batch_size:
            return S_OK(total)


def purge_logs(db, deleted_before: dt.datetime, batch_size: int = 1000, sweep_orphans: bool = True):
    """Remove the logs of VMs deleted before ``deleted_before``, and (``sweep_orphans``) logs
    without a VM row last updated before it; S_OK(number of log rows removed)."""
    total = 0
    selects = ["SELECT DISTINCT L.`VMName` FROM VMLogs L JOIN VMs V ON V.`VMName` = L.`VMName` "
               "WHERE V.`Deleted` IS NOT NULL AND V.`Deleted` < %s LIMIT %s"]
    if sweep_orphans:
        selects.append("SELECT DISTINCT L.`VMName` FROM VMLogs L LEFT JOIN VMs V ON V.`VMName` = L.`VMName` "
                       "WHERE V.`VMName` IS NULL AND L.`Updated` < %s LIMIT %s")
    for select in selects:
        result = _delete_by_names(db, select, (deleted_before, batch_size), "VMLogs", batch_size)
        if not result["OK"]:
            return result
        total += result["Value"]
    return S_OK(total)


def compact_heartbeats(db, deleted_before: dt.datetime, batch_size: int = 1000,
                       deleted_since: dt.datetime | None = None, sweep_orphans: bool = True):
    """Keep the first, the last and the first of every hour of the heartbeats of VMs deleted
    before ``deleted_before`` (and, if given, since ``deleted_since``: the older ones were
    compacted by an earlier pass); (``sweep_orphans``) remove heartbeats without a VM row older
    than ``deleted_before``.
    S_OK(number of heartbeat rows removed)."""
    total = 0
    since = "" if deleted_since is None else "AND V.`Deleted` >= %s "
    window = (deleted_before,) if deleted_since is None else (deleted_before, deleted_since)
    while True:
        # After compaction an hour holds at most two heartbeats (its first, and the VM's last).
        result = db._query(
            "SELECT DISTINCT H.`VMName` FROM VMHeartbeats H JOIN VMs V ON V.`VMName` = H.`VMName` "
            f"WHERE V.`Deleted` IS NOT NULL AND V.`Deleted` < %s {since}"
            f"GROUP BY H.`VMName`, {_HOUR.replace('`HeartbeatTime`', 'H.`HeartbeatTime`')} "
            "HAVING COUNT(*) > 2 LIMIT %s",
            args=(*window, batch_size),
        )
        if not result["OK"]:
            return result
        names = [row[0] for row in result["Value"]]
        if not names:
            break
        result = db._query(
            "SELECT `HeartbeatID` FROM (SELECT `HeartbeatID`, "
            "ROW_NUMBER() OVER (PARTITION BY `VMName` ORDER BY `HeartbeatTime`, `HeartbeatID`) "
            "AS from_first, "
            "ROW_NUMBER() OVER (PARTITION BY `VMName` ORDER BY `HeartbeatTime` DESC, `HeartbeatID` DESC) "
            "AS from_last, "
            f"ROW_NUMBER() OVER (PARTITION BY `VMName`, {_HOUR} ORDER BY `HeartbeatTime`, `HeartbeatID`) "
            "AS in_hour "
            f"FROM VMHeartbeats WHERE `VMName` IN ({_marks(names)})) ranked "
            "WHERE from_first > 1 AND from_last > 1 AND in_hour > 1",
            args=names,
        )
        if not result["OK"]:
            return result
        ids = [row[0] for row in result["Value"]]
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            result = db._update(f"DELETE FROM VMHeartbeats WHERE `HeartbeatID` IN ({_marks(chunk)})", args=chunk)
            if not result["OK"]:
                return result
            total += int(result["Value"])
        if not ids:
            return S_ERROR(f"heartbeat compaction made no progress for {len(names)} VM(s)")
    if not sweep_orphans:
        return S_OK(total)
    result = _delete_by_names(
        db,
        "SELECT DISTINCT H.`VMName` FROM VMHeartbeats H LEFT JOIN VMs V ON V.`VMName` = H.`VMName` "
        "WHERE V.`VMName` IS NULL AND H.`HeartbeatTime` < %s LIMIT %s",
        (deleted_before, batch_size),
        "VMHeartbeats",
        batch_size,
    )
    if not result["OK"]:
        return result
    return S_OK(total + result["Value"])


def _delete_by_names(db, select: str, args: tuple, table: str, batch_size: int):
    """Delete the rows of ``table`` of the VM names ``select`` finds, batch by batch."""
    total = 0
    while True:
        result = db._query(select, args=args)
        if not result["OK"]:
            return result
        names = [row[0] for row in result["Value"]]
        if not names:
            return S_OK(total)
        result = db._update(f"DELETE FROM {table} WHERE `VMName` IN ({_marks(names)})", args=names)
        if not result["OK"]:
            return result
        total += int(result["Value"])
        if len(names) < batch_size:
            return S_OK(total)


def _per_vm_tables() -> list[str]:
    """The tables with rows of one VM beside its VMs row (logs, heartbeats, and any added since)."""
    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import TABLES

    return [name for name, desc in TABLES.items() if name != "VMs" and "VMName" in desc["Fields"]]


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))
