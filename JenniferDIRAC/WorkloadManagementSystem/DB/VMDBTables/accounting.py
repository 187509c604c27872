"""Accounting bookkeeping of ``VMs`` (which finished VMs were accounted, with their figures) and
the purge of accounted, deleted VMs."""

from __future__ import annotations

import datetime as dt

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import (
    RecordError,
    check_names,
    chunks,
    placeholders,
    utc_naive,
    utc_now,
)


class Accounting:
    """Mixed into VMDB (``self`` is a DIRAC DB with ``getVMs``)."""

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
            names = check_names(names)
            when = utc_naive(when) if when else utc_now()
        except (RecordError, TypeError) as exc:
            return S_ERROR(f"markAccounted: {exc}")
        total = 0
        for chunk in chunks(names):
            result = self._update(
                f"UPDATE VMs SET `Accounted` = 1, `AccountedTime` = %s "
                f"WHERE `Accounted` = 0 AND `VMName` IN ({placeholders(len(chunk))})",
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
        for chunk in chunks(names):
            marks = placeholders(len(chunk))
            for table in ("VMLogs", "VMHeartbeats", "VMBootstrap", "VMs"):
                res = self._update(f"DELETE FROM {table} WHERE `VMName` IN ({marks})", args=chunk)
                if not res["OK"]:
                    return res
        return S_OK(len(names))



def with_accounting_figures(vm: dict) -> dict:
    """``vm`` plus ``end`` and ``wall_seconds`` (what accounting reports for it)."""
    end = vm.get("ended") or vm.get("deleted")
    start = vm.get("started")
    wall = int((end - start).total_seconds()) if (start and end and end > start) else 0
    return {**vm, "end": end, "wall_seconds": wall}
