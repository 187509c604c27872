-- ------------------------------------------------------------------------------
--  VMDB: state of the cloud VMs of a JenniferDIRAC installation.
--
--  `dirac-install-db VMDB` creates the database and grants it to the DIRAC user;
--  the tables (VMs, VMBackoff, VMLogs, VMHeartbeats) are created by the VMDB class
--  on its first connection (as DIRAC's TaskQueueDB does), so that the schema is
--  defined in one place: JenniferDIRAC/WorkloadManagementSystem/DB/VMDB.py.
-- ------------------------------------------------------------------------------

USE VMDB;
