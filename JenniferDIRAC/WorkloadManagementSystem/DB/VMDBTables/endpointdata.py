"""What VMs send through the VM endpoint: heartbeats (``VMHeartbeats``, the last
``MaxHeartbeats`` per VM), the shutdown message (columns of ``VMs``) and logs (``VMLogs``, the
last ``MaxLogBytes`` bytes of each kind)."""

from __future__ import annotations

import datetime as dt

from DIRAC import S_ERROR, S_OK, gLogger

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import LOG_KINDS_LIMIT
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import utc_naive, utc_now


class EndpointData:
    """Mixed into VMDB (``self`` is a DIRAC DB with ``_requireVM``, ``maxLogBytes``, ``maxHeartbeats``)."""

    def addHeartbeat(self, vm_name: str, when: dt.datetime | None = None, load: str = ""):
        """Record a heartbeat; keeps the last ``MaxHeartbeats`` per VM."""
        result = self._requireVM(vm_name)
        if not result["OK"]:
            return result
        try:
            when = utc_naive(when) if when else utc_now()
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

    def addHeartbeats(self, heartbeats):
        """Record many heartbeats, ``[(vm_name, when, load), ...]``, in three statements whatever
        their number: one UPDATE of the VMs' last heartbeat (idempotent, so a batch retried after
        a failed INSERT changes nothing twice), one multi-row INSERT, one DELETE keeping the last
        ``MaxHeartbeats`` per VM. The caller (the VM endpoint) has checked each
        VM's record when it accepted the heartbeat; names no longer in VMs are not refused."""
        rows = []
        try:
            for vm_name, when, load in heartbeats:
                if not isinstance(vm_name, str) or not vm_name:
                    return S_ERROR("addHeartbeats: each heartbeat needs a VM name")
                rows.append((vm_name, utc_naive(when) if when else utc_now(), str(load or "")[:128]))
        except (TypeError, ValueError) as exc:
            return S_ERROR(f"addHeartbeats: each heartbeat is (vm_name, when, load): {exc}")
        if not rows:
            return S_OK(0)
        newest: dict[str, tuple[dt.datetime, str]] = {}
        for vm_name, when, load in rows:  # arrival order: the last one of a VM is its load now
            if vm_name not in newest or when >= newest[vm_name][0]:
                newest[vm_name] = (when, load)
        latest = " UNION ALL ".join(["SELECT %s AS n, %s AS t, %s AS l"] * len(newest))
        result = self._update(
            f"UPDATE VMs v JOIN ({latest}) b ON v.`VMName` = b.n "
            "SET v.`LastHeartbeat` = GREATEST(COALESCE(v.`LastHeartbeat`, b.t), b.t), v.`HeartbeatLoad` = b.l",
            args=tuple(value for name, (when, load) in newest.items() for value in (name, when, load)),
        )
        if not result["OK"]:
            return result
        result = self._update(
            "INSERT INTO VMHeartbeats (`VMName`, `HeartbeatTime`, `HeartbeatLoad`) VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(rows)),
            args=tuple(value for row in rows for value in row),
        )
        if not result["OK"]:
            return result
        result = self._update(
            "DELETE FROM VMHeartbeats WHERE `HeartbeatID` IN (SELECT `HeartbeatID` FROM ("
            "SELECT `HeartbeatID`, ROW_NUMBER() OVER (PARTITION BY `VMName` ORDER BY `HeartbeatID` DESC) AS rn "
            f"FROM VMHeartbeats WHERE `VMName` IN ({', '.join(['%s'] * len(newest))})) ranked WHERE rn > %s)",
            args=(*newest, max(1, int(self.maxHeartbeats))),
        )
        if not result["OK"]:  # the rows are in: the next batch of these VMs trims them
            gLogger.warn("addHeartbeats: old heartbeats not trimmed", result["Message"])
        return S_OK(len(rows))

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
