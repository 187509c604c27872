"""The CE's access to the VM database (VMStateClient: VMDB directly or the VMManager service).

VMDB is optional for the CE: without it VMs are not recorded and no backoff applies. A failed
call is a warning once (then verbose until a call works again) and never loses the cloud's
answer the CE is handling."""

from __future__ import annotations

from DIRAC import S_ERROR


class VMStateAdapter:
    def __init__(self, log) -> None:
        self.log = log
        self._client = None
        self._loaded = False
        self._warned = False

    def client(self):
        """The VMStateClient, or None when it cannot be used here (logged once)."""
        if not self._loaded:
            self._loaded = True
            try:
                from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

                self._client = VMStateClient()
            except Exception as exc:  # noqa: BLE001 - VMDB is optional for the CE
                self.log.warn("No VM database: VMs are not recorded and no backoff applies", repr(exc))
        return self._client

    def call(self, method: str, *args):
        """Value of a VMStateClient call, or None if it failed (the first failure is a warning)."""
        client = self.client()
        if client is None:
            return None
        try:
            result = getattr(client, method)(*args)
        except Exception as exc:  # noqa: BLE001 - VMDB is optional: never lose the cloud's answer to it
            result = S_ERROR(f"unexpected {type(exc).__name__}: {exc}")
        if result["OK"]:
            self._warned = False
            return result["Value"]
        if not self._warned:
            self._warned = True
            self.log.warn("VM database unavailable, carrying on without it", f"{method}: {result['Message']}")
        else:
            self.log.verbose("VM database still unavailable", f"{method}: {result['Message']}")
        return None
