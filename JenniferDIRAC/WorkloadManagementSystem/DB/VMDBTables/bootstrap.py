"""``VMBootstrap``: the sealed pilot wrapper each VM fetches once at boot (Security/VMBootstrap.py),
when it was fetched, and how many times its bootstrap token was presented again (incidents)."""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import RecordError, check_names, chunks, placeholders


class Bootstrap:
    """Mixed into VMDB (``self`` is a DIRAC DB with ``_requireVM``)."""

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

    def getBootstraps(self, names):
        """S_OK({VM name: when its bootstrap was fetched, None if never}) of the VMs among `names`
        that have one (a VM created without a contextualization endpoint has none)."""
        try:
            names = check_names(names)
        except RecordError as exc:
            return S_ERROR(f"getBootstraps: {exc}")
        fetched = {}
        for chunk in chunks(sorted(set(names))):
            result = self._query(
                f"SELECT `VMName`, `Spent` FROM VMBootstrap WHERE `VMName` IN ({placeholders(len(chunk))})",
                args=chunk,
            )
            if not result["OK"]:
                return result
            fetched.update((row[0], row[1]) for row in result["Value"])
        return S_OK(fetched)

    def forgetEndedBootstraps(self):
        """Drop the wrappers of VMs that ended without fetching theirs. S_OK(rows changed)."""
        return self._update(
            "UPDATE VMBootstrap b JOIN VMs v ON v.`VMName` = b.`VMName` SET b.`Sealed` = NULL "
            "WHERE b.`Sealed` IS NOT NULL AND v.`Deleted` IS NOT NULL"
        )
