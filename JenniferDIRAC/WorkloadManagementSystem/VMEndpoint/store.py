"""Where the VM endpoint keeps what VMs send: the small interface the WSGI app writes to, and its
implementation over VMStateClient (VMDB directly or through the VMManager service)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class StoreError(Exception):
    """The store could not be reached or refused the write: the VM should retry later."""


class UnknownVM(StoreError):
    """The store has no record of this VM."""


class VMRecordStore(Protocol):
    def add_heartbeat(self, vm_name: str, when: dt.datetime, load: str) -> None: ...

    def set_shutdown_message(self, vm_name: str, code: int, text: str) -> None: ...

    def store_log(self, vm_name: str, kind: str, content: bytes) -> None: ...

    def log_sizes(self, vm_name: str) -> dict[str, int]:
        """Bytes currently stored per log kind of a VM."""
        ...


class VMStateStore:
    """VMRecordStore over VMStateClient's S_OK/S_ERROR API."""

    def __init__(self, client=None):
        if client is None:
            from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

            client = VMStateClient()
        self._client = client

    @staticmethod
    def _value(result, vm_name: str):
        if result["OK"]:
            return result["Value"]
        message = str(result.get("Message", ""))
        if message.startswith("unknown VM"):
            raise UnknownVM(f"unknown VM {vm_name}")
        raise StoreError(message)

    def add_heartbeat(self, vm_name: str, when: dt.datetime, load: str) -> None:
        self._value(self._client.addHeartbeat(vm_name, when, load), vm_name)

    def set_shutdown_message(self, vm_name: str, code: int, text: str) -> None:
        self._value(self._client.setShutdownMessage(vm_name, code, text), vm_name)

    def store_log(self, vm_name: str, kind: str, content: bytes) -> None:
        self._value(self._client.storeLog(vm_name, kind, content), vm_name)

    def log_sizes(self, vm_name: str) -> dict[str, int]:
        info = self._value(self._client.getLogInfo(vm_name), vm_name)
        return {kind: int(item["stored"]) for kind, item in info.items()}
