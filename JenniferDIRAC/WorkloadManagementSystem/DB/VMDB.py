"""VMDB: the state of every cloud VM this installation created, shared by the CE, the VMDirector,
the VM endpoint and the admin commands.

Tables (created on first connection, like DIRAC's TaskQueueDB; ``VMDB.sql`` is what
``dirac-install-db VMDB`` loads), each group in its module of ``VMDBTables/``:

- ``VMs`` (records.py): one row per VM name (names are unique and chosen before creation), with
  what the CE knew at creation, what the cloud last said and deletion; accounting.py keeps its
  accounting bookkeeping (whether the VM has been accounted) and the purge of old rows. Its
  ``Changed`` column, kept by MariaDB on every write, lets the VMDirector read only a CE's rows
  changed since its last read (``getVMChanges``, checked against the CE's count and stamps).
- ``VMBackoff`` (backoff.py): the stored state of each (CE, profile) queue's backoff state
  machine (Lifecycle/StateMachine.py decides every change; the SQL only stores it).
- ``VMLogs``, ``VMHeartbeats`` and the shutdown message (endpointdata.py): what VMs send through
  the VM endpoint, bounded by ``MaxLogBytes`` and ``MaxHeartbeats``.
- ``VMBootstrap`` (bootstrap.py): the sealed pilot wrapper each VM fetches once at boot.
- ``VMCapacity`` (capacity.py): the (cloud, flavor, zone) combinations a cloud had no capacity
  for, until when, written by the CE that saw the refusal and read by the CEs of every process.
- ``VMDBSchema`` (upgrade.py): the schema version. A database made by an older version is
  upgraded on the first connection of the new one (missing tables created, columns added with
  ``ALTER TABLE ... ADD COLUMN / INDEX IF NOT EXISTS``, ``upgrade_statements``); the same ALTERs are in
  ``VMDB.sql``, so ``dirac-install-db VMDB`` on an existing database upgrades it too. Both are
  idempotent. A database newer than the code is refused, untouched.

Every statement is parametrised; no value is ever formatted into SQL text. Times are stored and
returned as naive UTC datetimes (DIRAC's convention); aware datetimes are converted on input.
"""

from __future__ import annotations

from DIRAC import gConfig
from DIRAC.ConfigurationSystem.Client.PathFinder import getDatabaseSection
from DIRAC.Core.Base.DB import DB

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.accounting import Accounting
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.backoff import Backoffs
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.bootstrap import Bootstrap
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.capacity import CapacityMemory
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.endpointdata import EndpointData
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.records import VMRecords
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import (  # noqa: F401 - the schema's public names
    SCHEMA_VERSION,
    TABLES,
    UNVERSIONED,
    UPGRADES,
    VM_COLUMNS,
    upgrade_statements,
)
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.upgrade import SchemaUpgrade

DB_FULL_NAME = "WorkloadManagement/VMDB"
DEFAULT_MAX_LOG_BYTES = 1024 * 1024
DEFAULT_MAX_HEARTBEATS = 100
#: DIRAC's default (10 retries, sleeping 5, 10, ... 50 s: 275 s in all) would stall a CE or an agent
#: for minutes while the database is down; VMDB gives up after this many retries (5 s each more).
DEFAULT_CONNECT_RETRIES = 1


class VMDB(VMRecords, Backoffs, EndpointData, Bootstrap, CapacityMemory, Accounting, SchemaUpgrade, DB):
    """WorkloadManagement/VMDB. Every public method returns S_OK / S_ERROR."""

    def __init__(self, parentLogger=None):
        section = getDatabaseSection(DB_FULL_NAME)
        self.connectRetries = gConfig.getValue(f"{section}/ConnectRetries", DEFAULT_CONNECT_RETRIES)
        super().__init__("VMDB", DB_FULL_NAME, parentLogger=parentLogger)
        self.maxLogBytes = gConfig.getValue(f"{section}/MaxLogBytes", DEFAULT_MAX_LOG_BYTES)
        self.maxHeartbeats = gConfig.getValue(f"{section}/MaxHeartbeats", DEFAULT_MAX_HEARTBEATS)
        result = self._initializeTables()
        if not result["OK"]:
            raise RuntimeError(f"Cannot use VMDB: {result['Message']}")

    def _getConnection(self, retries=None):
        return super()._getConnection(self.connectRetries if retries is None else retries)
