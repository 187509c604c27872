"""VMDBRetentionAgent: keeps VMDB bounded over years of VMs.

.. literalinclude:: ../ConfigTemplate.cfg
  :start-after: ##BEGIN VMDBRetentionAgent
  :end-before: ##END
  :dedent: 2
  :caption: VMDBRetentionAgent options

Each cycle applies ``DB/VMDBRetention.py``: accounted VMs deleted more than VMRetentionDays ago
are removed with their logs and heartbeats, logs of VMs deleted more than LogRetentionDays ago
are removed, heartbeats of VMs deleted more than HeartbeatCompactionDays ago are compacted to
the first, the last and one per hour, and the VMCapacity rows (a flavor/zone without
capacity) whose memory has ended are removed. Live VMs and VMs not yet accounted are never touched.
The first cycle after a start also removes logs and heartbeats left without a VM row; later
cycles compact only the VMs deleted since the previous one. Run it where VMDB is configured:
``dirac-agent WorkloadManagement/VMDBRetentionAgent``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBRetention import RetentionPolicy, apply_retention


class VMDBRetentionAgent(AgentModule):
    def initialize(self):
        try:
            RetentionPolicy.from_options(self.am_getOption)
        except ValueError as exc:
            return S_ERROR(f"VMDBRetentionAgent {exc}")
        from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

        self.vmdb = VMDB()
        # Heartbeats of VMs deleted before this were compacted by an earlier cycle of this
        # process; the first cycle after a start makes a full pass.
        self.compactedUntil = None
        return S_OK()

    def execute(self):
        # Read each cycle: a changed retention applies without a restart.
        try:
            policy = RetentionPolicy.from_options(self.am_getOption)
        except ValueError as exc:
            return S_ERROR(f"VMDBRetentionAgent {exc}")
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        result = apply_retention(self.vmdb, policy, now, compacted_until=self.compactedUntil)
        if not result["OK"]:
            self.log.error("VMDB retention failed, retried next cycle", result["Message"])
            return result
        done = result["Value"]
        self.compactedUntil = done["compacted_until"]
        self.log.notice(
            "VMDB retention",
            f"{done['vms']} VM(s) purged (deleted > {policy.vm_days:g} days), "
            f"{done['logs']} log(s) removed (> {policy.log_days:g} days), "
            f"{done['heartbeats']} heartbeat(s) compacted away (> {policy.heartbeat_compaction_days:g} days), "
            f"{done['capacity']} expired capacity memory row(s) removed",
        )
        return S_OK(done)
