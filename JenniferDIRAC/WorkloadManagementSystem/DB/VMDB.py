"""VMDB: the state of every cloud VM this installation created, shared by the CE, the VMDirector,
the VM endpoint and the admin commands.

Tables (created on first connection, like DIRAC's TaskQueueDB; ``VMDB.sql`` is what
``dirac-install-db VMDB`` loads):

- ``VMs``: one row per VM name (names are unique and chosen before creation), with what the
  CE knew at creation, what the cloud last said, deletion, heartbeat, shutdown message and
  whether the VM has been accounted.
- ``VMBackoff``: one row per (CE, profile) that is backing off after failures, with the time it
  ends, the reason, a failure counter and the probe VM that is allowed to run meanwhile.
- ``VMLogs``: the last ``MaxLogBytes`` bytes of each log a VM uploaded, per kind.
- ``VMHeartbeats``: the most recent ``MaxHeartbeats`` heartbeats of each VM.
- ``VMBootstrap``: the sealed pilot wrapper each VM fetches once at boot, when it was fetched and
  how many times its bootstrap token was presented again (incidents).

Upgrades: a database made by an older version gets the columns added since (``UPGRADES``,
``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``) on the first connection of the new version; the
same statements are in ``VMDB.sql``, so ``dirac-install-db VMDB`` on an existing database
upgrades it too. Both are idempotent.

Every statement is parametrised; no value is ever formatted into SQL text. Times are stored and
returned as naive UTC datetimes (DIRAC's convention); aware datetimes are converted on input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from DIRAC import S_ERROR, S_OK, gConfig
from DIRAC.ConfigurationSystem.Client.PathFinder import getDatabaseSection
from DIRAC.Core.Base.DB import DB

DB_FULL_NAME = "WorkloadManagement/VMDB"
DEFAULT_MAX_LOG_BYTES = 1024 * 1024
DEFAULT_MAX_HEARTBEATS = 100
#: DIRAC's default (10 retries, sleeping 5, 10, ... 50 s: 275 s in all) would stall a CE or an agent
#: for minutes while the database is down; VMDB gives up after this many retries (5 s each more).
DEFAULT_CONNECT_RETRIES = 1
TERMINAL_STATES = ("SHUTOFF", "ERROR")
RUNNING_STATE = "ACTIVE"
_CHUNK = 500

#: (dict key, column, SQL type). The dict keys are the API; the columns never leave this module.
VM_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("vm_name", "VMName", "VARCHAR(128) NOT NULL"),
    ("vm_id", "VMID", "VARCHAR(128) NOT NULL DEFAULT ''"),
    ("ce", "CE", "VARCHAR(128) NOT NULL"),
    ("site", "Site", "VARCHAR(128) NOT NULL DEFAULT ''"),
    ("vo", "VO", "VARCHAR(64) NOT NULL DEFAULT ''"),
    ("profile", "Profile", "VARCHAR(64) NOT NULL DEFAULT ''"),
    ("pilot_reference", "PilotReference", "VARCHAR(255) NOT NULL DEFAULT ''"),
    ("stamp", "Stamp", "VARCHAR(32) NOT NULL DEFAULT ''"),
    ("flavor", "Flavor", "VARCHAR(128) NOT NULL DEFAULT ''"),
    ("cores", "Cores", "INT UNSIGNED NOT NULL DEFAULT 0"),
    ("ram_mb", "RAMMB", "INT UNSIGNED NOT NULL DEFAULT 0"),
    ("created", "Created", "DATETIME NOT NULL"),
    ("started", "Started", "DATETIME NULL DEFAULT NULL"),
    ("ended", "Ended", "DATETIME NULL DEFAULT NULL"),
    ("cloud_state", "CloudState", "VARCHAR(16) NOT NULL DEFAULT 'BUILD'"),
    ("cloud_state_time", "CloudStateTime", "DATETIME NULL DEFAULT NULL"),
    ("fault", "Fault", "VARCHAR(512) NOT NULL DEFAULT ''"),
    ("deleted", "Deleted", "DATETIME NULL DEFAULT NULL"),
    ("delete_reason", "DeleteReason", "VARCHAR(512) NOT NULL DEFAULT ''"),
    #: a FailureKind value when the CE could not create the VM (quota, capacity,
    #: configuration, cloud_fault, unreachable, auth), '' otherwise
    ("failure_kind", "FailureKind", "VARCHAR(16) NOT NULL DEFAULT ''"),
    ("last_heartbeat", "LastHeartbeat", "DATETIME NULL DEFAULT NULL"),
    ("heartbeat_load", "HeartbeatLoad", "VARCHAR(128) NOT NULL DEFAULT ''"),
    ("shutdown_code", "ShutdownCode", "INT NULL DEFAULT NULL"),
    ("shutdown_message", "ShutdownMessage", "VARCHAR(512) NOT NULL DEFAULT ''"),
    ("accounted", "Accounted", "TINYINT(1) NOT NULL DEFAULT 0"),
    ("accounted_time", "AccountedTime", "DATETIME NULL DEFAULT NULL"),
)
_VM_KEYS = tuple(key for key, _, _ in VM_COLUMNS)
_VM_SELECT = ", ".join(f"`{col}`" for _, col, _ in VM_COLUMNS)
_LIMITS = {key: int(sql.split("(")[1].split(")")[0]) for key, _, sql in VM_COLUMNS if sql.startswith("VARCHAR")}

#: What ``recordVMs`` accepts; everything else is set later by the lifecycle.
RECORD_KEYS = (
    "vm_name", "vm_id", "ce", "site", "vo", "profile", "pilot_reference", "stamp",
    "flavor", "cores", "ram_mb", "created",
)  # fmt: skip

TABLES = {
    "VMs": {
        "Fields": {col: sql for _, col, sql in VM_COLUMNS},
        "PrimaryKey": "VMName",
        "Indexes": {
            "CE": ["CE", "Deleted"],
            "PilotReference": ["PilotReference"],
            "Unaccounted": ["Accounted", "Ended"],
        },
    },
    "VMBackoff": {
        "Fields": {
            "CE": "VARCHAR(128) NOT NULL",
            "Profile": "VARCHAR(64) NOT NULL DEFAULT ''",
            "Until": "DATETIME NOT NULL",
            "Reason": "VARCHAR(512) NOT NULL DEFAULT ''",
            "Failures": "INT UNSIGNED NOT NULL DEFAULT 0",
            "Probe": "TINYINT(1) NOT NULL DEFAULT 0",
            "ProbeVM": "VARCHAR(128) NOT NULL DEFAULT ''",
            "ProbeStarted": "DATETIME NULL DEFAULT NULL",
            "Updated": "DATETIME NOT NULL",
        },
        "PrimaryKey": ["CE", "Profile"],
    },
    "VMLogs": {
        "Fields": {
            "VMName": "VARCHAR(128) NOT NULL",
            "Kind": "VARCHAR(32) NOT NULL",
            "Content": "MEDIUMBLOB NOT NULL",
            "OriginalSize": "BIGINT UNSIGNED NOT NULL DEFAULT 0",
            "Updated": "DATETIME NOT NULL",
        },
        "PrimaryKey": ["VMName", "Kind"],
    },
    "VMHeartbeats": {
        "Fields": {
            "HeartbeatID": "BIGINT UNSIGNED NOT NULL AUTO_INCREMENT",
            "VMName": "VARCHAR(128) NOT NULL",
            "HeartbeatTime": "DATETIME NOT NULL",
            "HeartbeatLoad": "VARCHAR(128) NOT NULL DEFAULT ''",
        },
        "PrimaryKey": "HeartbeatID",
        "Indexes": {"VMTime": ["VMName", "HeartbeatTime"]},
    },
    # The sealed pilot wrapper a VM fetches once at boot (Security/VMBootstrap.py). Added after
    # v0.1.0: an older database gets it as a missing table on the first connection.
    "VMBootstrap": {
        "Fields": {
            "VMName": "VARCHAR(128) NOT NULL",
            "Sealed": "MEDIUMBLOB NULL",
            "Created": "DATETIME NOT NULL",
            "Spent": "DATETIME NULL DEFAULT NULL",
            "Replays": "INT UNSIGNED NOT NULL DEFAULT 0",
            "LastReplay": "DATETIME NULL DEFAULT NULL",
        },
        "PrimaryKey": "VMName",
    },
}

#: Columns added after v0.1.0: (table, column). Their SQL types are the ones in TABLES.
UPGRADES: tuple[tuple[str, str], ...] = (("VMs", "FailureKind"),)


def upgrade_statements() -> list[str]:
    """The idempotent ALTERs that bring an older VMDB to this schema (also in VMDB.sql)."""
    return [
        f"ALTER TABLE `{table}` ADD COLUMN IF NOT EXISTS `{column}` {TABLES[table]['Fields'][column]}"
        for table, column in UPGRADES
    ]


#: FailureKind values VMDB accepts (errors.FailureKind; kept as strings, the DB needs no enum)
FAILURE_KINDS = frozenset({"quota", "capacity", "configuration", "cloud_fault", "unreachable", "auth"})

LOG_KINDS_LIMIT = 32


def utc_naive(value: dt.datetime | None) -> dt.datetime | None:
    """A datetime as naive UTC (the DB's representation); naive input is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def _chunks(items: list, size: int | None = None) -> Iterable[list]:
    size = size or _CHUNK
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RecordError(ValueError):
    """A VM record given to VMDB is malformed; the message names the field."""


def _check_text(field: str, value, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RecordError(f"field {field!r} must be a string, not {type(value).__name__}")
    if required and not value:
        raise RecordError(f"field {field!r} is required")
    limit = _LIMITS.get(field)
    if limit is not None and len(value) > limit:
        raise RecordError(f"field {field!r} is longer than {limit} characters")
    return value


def _check_names(names) -> list[str]:
    if isinstance(names, str):
        names = [names]
    return [_check_text("vm_name", name, required=True) for name in names]


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
            value = utc_naive(value) if value is not None else _now()
        else:
            value = _check_text(key, value, required=key in ("vm_name", "ce"))
        values.append(value)
    return tuple(values)


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


class VMDB(DB):
    """WorkloadManagement/VMDB. Every public method returns S_OK / S_ERROR."""

    def __init__(self, parentLogger=None):
        section = getDatabaseSection(DB_FULL_NAME)
        self.connectRetries = gConfig.getValue(f"{section}/ConnectRetries", DEFAULT_CONNECT_RETRIES)
        super().__init__("VMDB", DB_FULL_NAME, parentLogger=parentLogger)
        self.maxLogBytes = gConfig.getValue(f"{section}/MaxLogBytes", DEFAULT_MAX_LOG_BYTES)
        self.maxHeartbeats = gConfig.getValue(f"{section}/MaxHeartbeats", DEFAULT_MAX_HEARTBEATS)
        result = self._initializeTables()
        if not result["OK"]:
            raise RuntimeError(f"Cannot create the VMDB tables: {result['Message']}")

    def _getConnection(self, retries=None):
        return super()._getConnection(self.connectRetries if retries is None else retries)

    def _initializeTables(self):
        result = self._query("SHOW TABLES")
        if not result["OK"]:
            return result
        existing = {row[0] for row in result["Value"]}
        missing = {name: desc for name, desc in TABLES.items() if name not in existing}
        if missing:
            self.log.info("Creating VMDB tables", ", ".join(missing))
            result = self._createTables(missing)
            if not result["OK"]:
                return result
        return self._upgradeTables()

    def _upgradeTables(self):
        """Add the columns an older version's tables lack (idempotent)."""
        for (table, column), cmd in zip(UPGRADES, upgrade_statements()):
            result = self._query(
                "SELECT COUNT(*) FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s",
                args=(table, column),
            )
            if not result["OK"]:
                return result
            if int(result["Value"][0][0]):
                continue
            self.log.notice("Upgrading VMDB", f"adding column {table}.{column}")
            result = self._update(cmd)
            if not result["OK"]:
                return result
        return S_OK()

    # --- VMs ---------------------------------------------------------------------------------
    def recordVMs(self, records: list[dict]):
        """Record VMs at creation. Recording the same name again updates the creation fields
        (the CE may learn the cloud id only after the create call), never the lifecycle ones."""
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
            f"INSERT INTO VMs ({columns}, `CloudStateTime`) VALUES ({_placeholders(len(RECORD_KEYS) + 1)}) "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )
        now = _now()
        result = self._manyInTransaction(cmd, [(*row, now) for row in rows])
        if not result["OK"]:
            return result
        return S_OK(len(rows))

    def _manyInTransaction(self, cmd: str, rows: list[tuple]):
        """Run ``cmd`` for every row, in chunks, all in one transaction (one commit, not one per row)."""
        result = self._getConnection()
        if not result["OK"]:
            return result
        conn = result["Value"]
        try:
            cursor = conn.cursor()
            cursor.execute("START TRANSACTION")
            cursor.close()
        except Exception as exc:  # the connection is broken: DIRAC's pool replaces it next time
            return S_ERROR(f"VMDB: cannot start a transaction: {exc!r}")
        for chunk in _chunks(rows):
            result = self._updatemany(cmd, chunk, conn=conn)
            if not result["OK"]:
                conn.rollback()
                return result
        conn.commit()
        return S_OK()

    def setVMStates(self, states: Mapping, when: dt.datetime | None = None):
        """Record what the cloud says of each VM: ``{vm_name: state}`` or
        ``{vm_name: {"state": s, "fault": text, "started": dt, "ended": dt, "vm_id": id}}``.

        ``Started`` is set the first time a VM is seen ACTIVE (or from ``started``),
        ``Ended`` the first time it is seen SHUTOFF or ERROR (or from ``ended``); neither is
        moved once set. Unknown names are ignored; S_OK(number of known VMs updated)."""
        when = utc_naive(when) if when else _now()
        rows = []
        for name, value in states.items():
            try:
                _check_text("vm_name", name, required=True)
                info = {"state": value} if isinstance(value, str) else dict(value)
                state = _check_text("cloud_state", info.get("state"), required=True)
                fault = (info.get("fault") or "")[: _LIMITS["fault"]]
                started = utc_naive(info.get("started")) or (when if state == RUNNING_STATE else None)
                ended = utc_naive(info.get("ended")) or (when if state in TERMINAL_STATES else None)
                vm_id = _check_text("vm_id", info.get("vm_id"))
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
        cmd = (
            "UPDATE VMs SET "
            "`CloudStateTime` = IF(`CloudState` = %s, `CloudStateTime`, %s), `CloudState` = %s, "
            "`Fault` = IF(%s = '', `Fault`, %s), "
            "`Started` = COALESCE(`Started`, %s), `Ended` = COALESCE(`Ended`, %s), "
            "`VMID` = IF(%s = '', `VMID`, %s) WHERE `VMName` = %s"
        )
        result = self._manyInTransaction(cmd, rows)
        if not result["OK"]:
            return result
        return S_OK(known)

    def _recordedStates(self, names: list[str]):
        """{vm_name: (CloudState, Fault, Started, Ended, VMID)} of the recorded VMs among names."""
        recorded = {}
        for chunk in _chunks(sorted(set(names))):
            result = self._query(
                "SELECT `VMName`, `CloudState`, `Fault`, `Started`, `Ended`, `VMID` FROM VMs "
                f"WHERE `VMName` IN ({_placeholders(len(chunk))})", args=chunk
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
        when = utc_naive(when) if when else _now()
        try:
            if isinstance(names, Mapping):
                rows = [(_check_text("vm_name", n, True), *_reason_and_kind(r, reason)) for n, r in names.items()]
            else:
                rows = [(n, str(reason or ""), "") for n in _check_names(names)]
        except RecordError as exc:
            return S_ERROR(f"markVMsDeleted: {exc}")
        if not rows:
            return S_OK(0)
        limit = _LIMITS["delete_reason"]
        cmd = (
            "UPDATE VMs SET `DeleteReason` = IF(`Deleted` IS NULL, %s, `DeleteReason`), "
            "`FailureKind` = IF(`Deleted` IS NULL, %s, `FailureKind`), "
            "`Ended` = COALESCE(`Ended`, %s), `Deleted` = COALESCE(`Deleted`, %s) WHERE `VMName` = %s"
        )
        result = self._manyInTransaction(cmd, [(r[:limit], k, when, when, n) for n, r, k in rows])
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
            conditions.append(f"`{column}` IN ({_placeholders(len(values))})")
            args.extend(values)
        if active_only:
            conditions.append("`Deleted` IS NULL")
        if unaccounted_only:
            conditions.append("`Accounted` = 0 AND (`Ended` IS NOT NULL OR `Deleted` IS NOT NULL)")
        cmd = f"SELECT {_VM_SELECT} FROM VMs"
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

    def _countExisting(self, names: list[str]):
        total = 0
        for chunk in _chunks(sorted(set(names))):
            result = self._query(
                f"SELECT COUNT(*) FROM VMs WHERE `VMName` IN ({_placeholders(len(chunk))})", args=chunk
            )
            if not result["OK"]:
                return result
            total += int(result["Value"][0][0])
        return S_OK(total)

    def _requireVM(self, vm_name: str):
        try:
            _check_text("vm_name", vm_name, required=True)
        except RecordError as exc:
            return S_ERROR(str(exc))
        result = self._countExisting([vm_name])
        if not result["OK"]:
            return result
        if not result["Value"]:
            return S_ERROR(f"unknown VM {vm_name!r}")
        return S_OK()

    # --- backoff -----------------------------------------------------------------------------
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
        keys = ("ce", "profile", "until", "reason", "failures", "probe", "probe_vm", "probe_started", "updated")
        rows = []
        for row in result["Value"]:
            entry = dict(zip(keys, row[:-1]))
            entry["failures"] = int(entry["failures"])
            entry["probe"] = bool(entry["probe"])
            entry["active"] = bool(row[-1])
            rows.append(entry)
        return S_OK(rows)

    def setBackoff(self, ce: str, profile: str, until: dt.datetime, reason: str, probe: bool = False):
        """Start or extend the backoff of (CE, profile); atomic, safe from several processes.

        ``until`` never moves backwards (the later of the stored and the new time wins), the
        failure counter goes up by one, ``probe=True`` marks that a probe is in progress.
        S_OK(the row after the update)."""
        try:
            _check_text("ce", ce, required=True)
            _check_text("profile", profile)
            until = utc_naive(until)
        except (RecordError, TypeError) as exc:
            return S_ERROR(f"setBackoff: {exc}")
        if until is None:
            return S_ERROR("setBackoff: until is required")
        reason = str(reason or "")[:512]
        cmd = (
            "INSERT INTO VMBackoff (`CE`, `Profile`, `Until`, `Reason`, `Failures`, `Probe`, `Updated`) "
            "VALUES (%s, %s, %s, %s, 1, %s, UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE "
            "`Reason` = IF(VALUES(`Until`) >= `Until`, VALUES(`Reason`), `Reason`), "
            "`Until` = GREATEST(`Until`, VALUES(`Until`)), `Failures` = `Failures` + 1, "
            "`Probe` = VALUES(`Probe`), `Updated` = UTC_TIMESTAMP()"
        )
        result = self._update(cmd, args=(ce, profile or "", until, reason, 1 if probe else 0))
        if not result["OK"]:
            return result
        return self.getBackoff(ce, profile or "")

    def claimProbe(self, ce: str, profile: str, vm_name: str):
        """Atomically make ``vm_name`` the one probe VM of an expired backoff.
        S_OK(True) if this caller got the probe slot, S_OK(False) if the backoff is still running,
        another probe is in progress, or there is no backoff (then no probe is needed)."""
        try:
            _check_text("ce", ce, required=True)
            _check_text("profile", profile)
            _check_text("vm_name", vm_name, required=True)
        except RecordError as exc:
            return S_ERROR(f"claimProbe: {exc}")
        cmd = (
            "UPDATE VMBackoff SET `Probe` = 1, `ProbeVM` = %s, `ProbeStarted` = UTC_TIMESTAMP(), "
            "`Updated` = UTC_TIMESTAMP() "
            "WHERE `CE` = %s AND `Profile` = %s AND `Probe` = 0 AND `Until` <= UTC_TIMESTAMP()"
        )
        result = self._update(cmd, args=(vm_name, ce, profile or ""))
        if not result["OK"]:
            return result
        return S_OK(result["Value"] == 1)

    def releaseProbe(self, ce: str, profile: str = ""):
        """The probe VM ended without passing: allow another probe (the backoff stays)."""
        cmd = "UPDATE VMBackoff SET `Probe` = 0, `ProbeVM` = '', `ProbeStarted` = NULL WHERE `CE` = %s AND `Profile` = %s"
        return self._update(cmd, args=(ce, profile or ""))

    def clearBackoff(self, ce: str, profile: str = ""):
        """End the backoff of (CE, profile): a VM passed the fizzle time. S_OK(rows removed)."""
        return self._update("DELETE FROM VMBackoff WHERE `CE` = %s AND `Profile` = %s", args=(ce, profile or ""))

    # --- heartbeats, shutdown messages, logs -------------------------------------------------
    def addHeartbeat(self, vm_name: str, when: dt.datetime | None = None, load: str = ""):
        """Record a heartbeat; keeps the last ``MaxHeartbeats`` per VM."""
        result = self._requireVM(vm_name)
        if not result["OK"]:
            return result
        try:
            when = utc_naive(when) if when else _now()
        except TypeError as exc:
            return S_ERROR(f"addHeartbeat: {exc}")
        load = str(load or "")[:128]
        result = self._update(
            "UPDATE VMs SET `LastHeartbeat` = GREATEST(COALESCE(`LastHeartbeat`, %s), %s), `HeartbeatLoad` = %s "
            "WHERE `VMName` = %s",
            args=(when, when, load, vm_name),
        )
        if not result["OK"]:
            return result
        result = self._update(
            "INSERT INTO VMHeartbeats (`VMName`, `HeartbeatTime`, `HeartbeatLoad`) VALUES (%s, %s, %s)",
            args=(vm_name, when, load),
        )
        if not result["OK"]:
            return result
        return self._trimHeartbeats(vm_name)

    def _trimHeartbeats(self, vm_name: str):
        result = self._query(
            "SELECT `HeartbeatID` FROM VMHeartbeats WHERE `VMName` = %s ORDER BY `HeartbeatID` DESC LIMIT 1 OFFSET %s",
            args=(vm_name, max(0, int(self.maxHeartbeats) - 1)),
        )
        if not result["OK"] or not result["Value"]:
            return S_OK() if result["OK"] else result
        oldest_kept = result["Value"][0][0]
        result = self._update(
            "DELETE FROM VMHeartbeats WHERE `VMName` = %s AND `HeartbeatID` < %s", args=(vm_name, oldest_kept)
        )
        return S_OK() if result["OK"] else result

    def getHeartbeats(self, vm_name: str):
        """S_OK([(time, load), ...]) oldest first."""
        result = self._query(
            "SELECT `HeartbeatTime`, `HeartbeatLoad` FROM VMHeartbeats WHERE `VMName` = %s ORDER BY `HeartbeatID`",
            args=(vm_name,),
        )
        if not result["OK"]:
            return result
        return S_OK([(row[0], row[1]) for row in result["Value"]])

    def setShutdownMessage(self, vm_name: str, code: int, text: str = ""):
        """The VM's own account of why it stopped (VCYCLE's ``shutdown_message``, e.g. 300-699 = error)."""
        result = self._requireVM(vm_name)
        if not result["OK"]:
            return result
        if isinstance(code, bool) or not isinstance(code, int):
            return S_ERROR("setShutdownMessage: code must be an integer")
        return self._update(
            "UPDATE VMs SET `ShutdownCode` = %s, `ShutdownMessage` = %s WHERE `VMName` = %s",
            args=(code, str(text or "")[:512], vm_name),
        )

    def storeLog(self, vm_name: str, kind: str, content: bytes):
        """Store (replace) one log of a VM. Only the last ``MaxLogBytes`` bytes are kept:
        the end of a log tells why a VM stopped."""
        result = self._requireVM(vm_name)
        if not result["OK"]:
            return result
        if not isinstance(kind, str) or not kind or len(kind) > LOG_KINDS_LIMIT:
            return S_ERROR(f"storeLog: kind must be a non-empty string of at most {LOG_KINDS_LIMIT} characters")
        if isinstance(content, str):
            content = content.encode()
        if not isinstance(content, (bytes, bytearray)):
            return S_ERROR("storeLog: content must be bytes")
        size = len(content)
        kept = bytes(content[-int(self.maxLogBytes) :]) if size > self.maxLogBytes else bytes(content)
        return self._update(
            "INSERT INTO VMLogs (`VMName`, `Kind`, `Content`, `OriginalSize`, `Updated`) "
            "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP()) ON DUPLICATE KEY UPDATE "
            "`Content` = VALUES(`Content`), `OriginalSize` = VALUES(`OriginalSize`), `Updated` = UTC_TIMESTAMP()",
            args=(vm_name, kind, kept, size),
        )

    # --- the one-time bootstrap fetch ---------------------------------------------------------
    def storeBootstrap(self, vm_name: str, sealed: bytes):
        """Keep the sealed wrapper ``vm_name`` fetches once at boot (replaces an unspent one)."""
        result = self._requireVM(vm_name)
        if not result["OK"]:
            return result
        if not isinstance(sealed, (bytes, bytearray)) or not sealed:
            return S_ERROR("storeBootstrap: sealed must be non-empty bytes")
        return self._update(
            "INSERT INTO VMBootstrap (`VMName`, `Sealed`, `Created`) VALUES (%s, %s, UTC_TIMESTAMP()) "
            "ON DUPLICATE KEY UPDATE `Sealed` = IF(`Spent` IS NULL, VALUES(`Sealed`), NULL)",
            args=(vm_name, bytes(sealed)),
        )

    def claimBootstrap(self, vm_name: str):
        """The first caller gets S_OK(sealed bytes) and the wrapper is forgotten; every later one
        gets S_OK(None) and is counted as a replay (an incident the VMDirector acts on)."""
        result = self._update(
            "UPDATE VMBootstrap SET `Spent` = UTC_TIMESTAMP() WHERE `VMName` = %s AND `Spent` IS NULL",
            args=(vm_name,),
        )
        if not result["OK"]:
            return result
        if result["Value"] != 1:
            result = self._update(
                "UPDATE VMBootstrap SET `Replays` = `Replays` + 1, `LastReplay` = UTC_TIMESTAMP() WHERE `VMName` = %s",
                args=(vm_name,),
            )
            if not result["OK"]:
                return result
            if result["Value"] != 1:
                return S_ERROR(f"unknown VM {vm_name!r}: no bootstrap recorded")
            return S_OK(None)
        result = self._query("SELECT `Sealed` FROM VMBootstrap WHERE `VMName` = %s", args=(vm_name,))
        if not result["OK"]:
            return result
        sealed = result["Value"][0][0] if result["Value"] else None
        forget = self._update("UPDATE VMBootstrap SET `Sealed` = NULL WHERE `VMName` = %s", args=(vm_name,))
        if not forget["OK"]:
            return forget
        return S_OK(bytes(sealed) if sealed is not None else None)

    def getBootstrapIncidents(self):
        """S_OK({VM name: replays}) of VMs not yet deleted whose bootstrap token was presented again."""
        result = self._query(
            "SELECT b.`VMName`, b.`Replays` FROM VMBootstrap b JOIN VMs v ON v.`VMName` = b.`VMName` "
            "WHERE b.`Replays` > 0 AND v.`Deleted` IS NULL"
        )
        if not result["OK"]:
            return result
        return S_OK({row[0]: int(row[1]) for row in result["Value"]})

    def forgetEndedBootstraps(self):
        """Drop the wrappers of VMs that ended without fetching theirs. S_OK(rows changed)."""
        return self._update(
            "UPDATE VMBootstrap b JOIN VMs v ON v.`VMName` = b.`VMName` SET b.`Sealed` = NULL "
            "WHERE b.`Sealed` IS NOT NULL AND v.`Deleted` IS NOT NULL"
        )

    def getLogs(self, vm_name: str):
        """S_OK({kind: bytes}) of the logs a VM uploaded (possibly truncated at the front)."""
        result = self._query("SELECT `Kind`, `Content` FROM VMLogs WHERE `VMName` = %s", args=(vm_name,))
        if not result["OK"]:
            return result
        return S_OK({kind: bytes(content) for kind, content in result["Value"]})

    def getLogInfo(self, vm_name: str):
        """S_OK({kind: {"stored": bytes kept, "size": original size, "updated": time}})."""
        result = self._query(
            "SELECT `Kind`, LENGTH(`Content`), `OriginalSize`, `Updated` FROM VMLogs WHERE `VMName` = %s",
            args=(vm_name,),
        )
        if not result["OK"]:
            return result
        return S_OK({k: {"stored": int(s), "size": int(o), "updated": u} for k, s, o, u in result["Value"]})

    # --- accounting --------------------------------------------------------------------------
    def getAccountingRecords(self, ce=None, limit: int | None = 1000):
        """Ended (or deleted) VMs not yet accounted, with their figures: the VM dict plus
        ``wall_seconds`` (Started -> Ended, 0 if the VM never ran) and ``end`` (Ended, or
        Deleted if the end was never seen)."""
        result = self.getVMs(ce=ce, unaccounted_only=True, limit=limit)
        if not result["OK"]:
            return result
        return S_OK([with_accounting_figures(vm) for vm in result["Value"]])

    def markAccounted(self, names, when: dt.datetime | None = None):
        """Mark VMs as accounted (one name or a list); S_OK(number newly marked)."""
        try:
            names = _check_names(names)
            when = utc_naive(when) if when else _now()
        except (RecordError, TypeError) as exc:
            return S_ERROR(f"markAccounted: {exc}")
        total = 0
        for chunk in _chunks(names):
            result = self._update(
                f"UPDATE VMs SET `Accounted` = 1, `AccountedTime` = %s "
                f"WHERE `Accounted` = 0 AND `VMName` IN ({_placeholders(len(chunk))})",
                args=[when, *chunk],
            )
            if not result["OK"]:
                return result
            total += int(result["Value"])
        return S_OK(total)

    # --- housekeeping ------------------------------------------------------------------------
    def purgeDeletedVMs(self, older_than: dt.datetime):
        """Remove VMs deleted before ``older_than`` that are accounted, with their logs and
        heartbeats. S_OK(number of VMs removed)."""
        try:
            older_than = utc_naive(older_than)
        except TypeError as exc:
            return S_ERROR(f"purgeDeletedVMs: {exc}")
        result = self._query(
            "SELECT `VMName` FROM VMs WHERE `Deleted` IS NOT NULL AND `Deleted` < %s AND `Accounted` = 1",
            args=(older_than,),
        )
        if not result["OK"]:
            return result
        names = [row[0] for row in result["Value"]]
        for chunk in _chunks(names):
            marks = _placeholders(len(chunk))
            for table in ("VMLogs", "VMHeartbeats", "VMBootstrap", "VMs"):
                res = self._update(f"DELETE FROM {table} WHERE `VMName` IN ({marks})", args=chunk)
                if not res["OK"]:
                    return res
        return S_OK(len(names))


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


def _vm_dict(row: tuple) -> dict:
    vm = dict(zip(_VM_KEYS, row))
    vm["accounted"] = bool(vm["accounted"])
    vm["cores"] = int(vm["cores"])
    vm["ram_mb"] = int(vm["ram_mb"])
    return vm


def with_accounting_figures(vm: dict) -> dict:
    """``vm`` plus ``end`` and ``wall_seconds`` (what accounting reports for it)."""
    end = vm.get("ended") or vm.get("deleted")
    start = vm.get("started")
    wall = int((end - start).total_seconds()) if (start and end and end > start) else 0
    return {**vm, "end": end, "wall_seconds": wall}
