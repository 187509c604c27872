"""Where the VM endpoint keeps what VMs send: the small interface the ASGI app writes to, and its
implementation over VMStateClient (VMDB directly or through the VMManager service)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


class StoreError(Exception):
    """The store could not be reached or refused the write: the VM should retry later."""


class UnknownVM(StoreError):
    """The store has no record of this VM."""


#: Cloud states after which a VM sends nothing more (VMDB.TERMINAL_STATES).
ENDED_STATES = frozenset(("SHUTOFF", "ERROR"))


@dataclass(frozen=True)
class VMStatus:
    """What the endpoint needs to know of a VM's record before it writes."""

    ended: str = ""  # why nothing more is recorded ("deleted", "powered off (SHUTOFF)"); "" = alive
    shutdown_code: int | None = None
    shutdown_message: str = ""

    @classmethod
    def from_record(cls, record: dict) -> VMStatus:
        state = str(record.get("cloud_state") or "")
        if record.get("deleted"):
            ended = "deleted"
        elif state in ENDED_STATES:
            ended = f"powered off ({state})" if state == "SHUTOFF" else f"in state {state}"
        else:
            ended = ""
        return cls(ended=ended, shutdown_code=record.get("shutdown_code"),
                   shutdown_message=str(record.get("shutdown_message") or ""))


class VMRecordStore(Protocol):
    def vm_status(self, vm_name: str) -> VMStatus:
        """Raises UnknownVM when the store has no record of the VM."""
        ...

    def add_heartbeat(self, vm_name: str, when: dt.datetime, load: str) -> None: ...

    def add_heartbeats(self, heartbeats: list[tuple[str, dt.datetime, str]]) -> None:
        """Many heartbeats at once (heartbeats.py); raises StoreError and writes none on failure."""
        ...

    def set_shutdown_message(self, vm_name: str, code: int, text: str) -> None: ...

    def store_log(self, vm_name: str, kind: str, content: bytes) -> None: ...

    def log_sizes(self, vm_name: str) -> dict[str, int]:
        """Bytes currently stored per log kind of a VM."""
        ...

    def claim_bootstrap(self, vm_name: str) -> bytes | None:
        """The sealed bootstrap to the first caller; None (a replay, recorded) to any later one."""
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

    def vm_status(self, vm_name: str) -> VMStatus:
        records = self._value(self._client.getVMs(names=[vm_name]), vm_name)
        if not records:
            raise UnknownVM(f"unknown VM {vm_name}")
        return VMStatus.from_record(records[0])

    def add_heartbeat(self, vm_name: str, when: dt.datetime, load: str) -> None:
        self._value(self._client.addHeartbeat(vm_name, when, load), vm_name)

    def add_heartbeats(self, heartbeats: list[tuple[str, dt.datetime, str]]) -> None:
        self._value(self._client.addHeartbeats(heartbeats), f"{len(heartbeats)} heartbeats")

    def set_shutdown_message(self, vm_name: str, code: int, text: str) -> None:
        self._value(self._client.setShutdownMessage(vm_name, code, text), vm_name)

    def store_log(self, vm_name: str, kind: str, content: bytes) -> None:
        self._value(self._client.storeLog(vm_name, kind, content), vm_name)

    def claim_bootstrap(self, vm_name: str) -> bytes | None:
        return self._value(self._client.claimBootstrap(vm_name), vm_name)

    def log_sizes(self, vm_name: str) -> dict[str, int]:
        info = self._value(self._client.getLogInfo(vm_name), vm_name)
        return {kind: int(item["stored"]) for kind, item in info.items()}
