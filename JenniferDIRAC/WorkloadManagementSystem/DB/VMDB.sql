-- ------------------------------------------------------------------------------
--  VMDB: state of the cloud VMs of a JenniferDIRAC installation.
--
--  `dirac-install-db VMDB` creates the database and grants it to the DIRAC user;
--  the tables (VMs, VMBackoff, VMLogs, VMHeartbeats, VMBootstrap, VMCapacity, VMDBSchema) are
--  created by the VMDB class on its first connection (as DIRAC's TaskQueueDB does),
--  so that the schema is defined in one place:
--  JenniferDIRAC/WorkloadManagementSystem/DB/VMDBTables/schema.py.
--
--  Upgrades of a database made by an older version (idempotent; the VMDB class runs
--  the same statements, VMDB.UPGRADES, on its first connection, then creates the
--  missing tables and records the schema version in VMDBSchema). A fresh database
--  has no tables yet: IF EXISTS makes these no-ops then.
-- ------------------------------------------------------------------------------

USE VMDB;

-- v0.2.0: the typed reason of a failed create (a FailureKind value), read by the VMDirector
ALTER TABLE IF EXISTS `VMs` ADD COLUMN IF NOT EXISTS `FailureKind` VARCHAR(16) NOT NULL DEFAULT '';

-- VMs.Changed (after v0.2.0): when each VM row last changed (kept by MariaDB itself), and the index a reader of one
-- CE's changes uses (VMDirector: the rows changed since its last read); existing rows get now
ALTER TABLE IF EXISTS `VMs` ADD COLUMN IF NOT EXISTS `Changed` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6);
ALTER TABLE IF EXISTS `VMs` ADD INDEX IF NOT EXISTS `CEChanged` (`CE`, `Changed`);
