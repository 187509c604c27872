"""The VMDB schema: every table's columns, and the columns added since v0.1.0."""

from __future__ import annotations

TERMINAL_STATES = ("SHUTOFF", "ERROR")
RUNNING_STATE = "ACTIVE"
#: The CE's state for a VM whose create went unanswered and that no lookup found: it may exist
#: (its pilot was returned to DIRAC). The VMDirector's next listing that shows the VM records
#: its cloud state and id over it (adoption); one that never does closes the record after
#: LostPilotGrace.
CREATE_UNCERTAIN_STATE = "CREATE_UNCERTAIN"

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
VM_KEYS = tuple(key for key, _, _ in VM_COLUMNS)
VM_SELECT = ", ".join(f"`{col}`" for _, col, _ in VM_COLUMNS)
LIMITS = {key: int(sql.split("(")[1].split(")")[0]) for key, _, sql in VM_COLUMNS if sql.startswith("VARCHAR")}

#: What ``recordVMs`` accepts; everything else is set later by the lifecycle.
RECORD_KEYS = (
    "vm_name", "vm_id", "ce", "site", "vo", "profile", "pilot_reference", "stamp",
    "flavor", "cores", "ram_mb", "created",
)  # fmt: skip

#: When the row last changed, kept by MariaDB itself (every INSERT and every UPDATE that changes
#: a value sets it, whoever writes), in the database's clock with microseconds: what a reader asks
#: for to read only the rows changed since its last read (``getVMChanges``). A TIMESTAMP, so it
#: is the same instant whatever the session's time zone (compared in UTC, ``UTC_STATEMENT``).
#: Not one of ``VM_COLUMNS``: it never leaves VMDB in a VM's dict.
CHANGED_COLUMN = "Changed"
CHANGED_SQL = "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
#: A statement's prefix that makes it read and compare TIMESTAMPs in UTC (MariaDB's SET STATEMENT:
#: the session's time zone is left as it is).
UTC_STATEMENT = "SET STATEMENT time_zone = '+00:00' FOR "

#: A row's Changed as integer microseconds since the epoch (the same whatever the time zone): a
#: row whose stamp is the one a reader kept is the row it read (every change moves it), and a
#: reader that merged changed rows into the ones it kept checks that its stamps sum to the
#: database's (``getVMChanges``).
CHANGE_STAMP = f"CAST(UNIX_TIMESTAMP(`{CHANGED_COLUMN}`) * 1000000 AS UNSIGNED)"

TABLES = {
    "VMs": {
        "Fields": {**{col: sql for _, col, sql in VM_COLUMNS}, CHANGED_COLUMN: CHANGED_SQL},
        "PrimaryKey": "VMName",
        "Indexes": {
            "CE": ["CE", "Deleted"],
            "PilotReference": ["PilotReference"],
            "Unaccounted": ["Accounted", "Ended"],
            "CEChanged": ["CE", CHANGED_COLUMN],
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
    # The (cloud, flavor, zone) combinations a cloud had no capacity for, until when (capacity.py),
    # shared by the CEs of every process. Added in schema version 3.
    "VMCapacity": {
        "Fields": {
            "Cloud": "VARCHAR(64) NOT NULL",
            "Flavor": "VARCHAR(128) NOT NULL",
            "Zone": "VARCHAR(128) NOT NULL DEFAULT ''",
            "Until": "DATETIME NOT NULL",
            "Reason": "VARCHAR(512) NOT NULL DEFAULT ''",
            "Updated": "DATETIME NOT NULL",
        },
        "PrimaryKey": ["Cloud", "Flavor", "Zone"],
    },
    # The schema versions this database was brought to (upgrade.py); the highest is its version.
    # v0.1.0 had no such table: a database without it is at version 1.
    "VMDBSchema": {
        "Fields": {
            "Version": "INT UNSIGNED NOT NULL",
            "Applied": "DATETIME NOT NULL",
        },
        "PrimaryKey": "Version",
    },
}

#: The schema version of this code: 1 = v0.1.0's tables; 2 = v0.2.0 (VMs.FailureKind, the
#: VMBootstrap and VMDBSchema tables); 3 = the VMCapacity table (created as a missing table on
#: the first connection). A new schema change adds its step and bumps this. VMs.Changed and its
#: index CEChanged (TRACKED_UPGRADES, INDEX_UPGRADES) need no version: they only add to the VMs
#: table, code of version 3 reads and writes it as before, and MariaDB keeps Changed for its
#: writes too.
SCHEMA_VERSION = 3
#: The version of a database whose tables predate VMDBSchema (v0.1.0, or a v0.2.0 development
#: database): every step is idempotent, so it is upgraded as if from v0.1.0.
UNVERSIONED = 1

#: Columns added after v0.1.0: (table, column). Their SQL types are the ones in TABLES.
#: Existing rows take the column's default.
UPGRADES: tuple[tuple[str, str], ...] = (("VMs", "FailureKind"),)
#: Columns added after v0.1.0 that MariaDB sets itself (existing rows get the time of the upgrade).
TRACKED_UPGRADES: tuple[tuple[str, str], ...] = (("VMs", CHANGED_COLUMN),)
#: Indexes added after v0.1.0: (table, index), on the columns TABLES gives; added after the columns.
INDEX_UPGRADES: tuple[tuple[str, str], ...] = (("VMs", "CEChanged"),)


def column_upgrade_statements() -> list[tuple[str, str, str]]:
    """(table, column, the idempotent ALTER adding it) of every column added after v0.1.0."""
    return [
        (table, column,
         f"ALTER TABLE `{table}` ADD COLUMN IF NOT EXISTS `{column}` {TABLES[table]['Fields'][column]}")
        for table, column in UPGRADES + TRACKED_UPGRADES
    ]


def index_upgrade_statements() -> list[tuple[str, str, str]]:
    """(table, index, the idempotent ALTER adding it) of every index added after v0.1.0."""
    return [
        (table, index, f"ALTER TABLE `{table}` ADD INDEX IF NOT EXISTS `{index}` "
         f"({', '.join(f'`{col}`' for col in TABLES[table]['Indexes'][index])})")
        for table, index in INDEX_UPGRADES
    ]


def upgrade_statements() -> list[str]:
    """The idempotent ALTERs that bring an older VMDB to this schema (also in VMDB.sql)."""
    return [cmd for _, _, cmd in column_upgrade_statements() + index_upgrade_statements()]


#: FailureKind values VMDB accepts (errors.FailureKind; kept as strings, the DB needs no enum)
FAILURE_KINDS = frozenset({"quota", "capacity", "configuration", "cloud_fault", "unreachable", "auth"})

LOG_KINDS_LIMIT = 32
