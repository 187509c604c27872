"""Host side of a LocalCloud VM's network: what a VM in a real cloud would reach, and nothing else.

A VM runs in its own network namespace (only ``lo``): it cannot reach the host's services nor
open ports visible on the host. For each allowed host address (the DIRAC services, the VM
endpoint, a pilot file server) the host listens on a Unix socket in a directory of the VM's
sandbox that only the host writes, and forwards every connection to that address; ``guestnet``
relays it from the same address inside the VM, so URLs in the user data work unchanged.
Addresses must be loopback addresses (the loopback DIRAC server's); each VM may hold a bounded
number of connections, so one VM cannot take the cloud process's file descriptors.

A VM may also get a metadata service: one more socket, named for ``169.254.169.254:80``, that
the host answers itself with that VM's documents (``metadata``) instead of forwarding it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import metadata
from .guestnet import socket_name

log = logging.getLogger(__name__)
CHUNK = 65536


def parse_destination(value: "str | tuple[str, int]") -> tuple[str, int]:
    """``"127.0.0.1:9135"``, ``"localhost:9135"`` or ``("127.0.0.1", 9135)`` -> ``("127.0.0.1", 9135)``."""
    if isinstance(value, str):
        host, sep, port_text = value.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"reachable address {value!r} is not HOST:PORT")
        host, port = host.strip("[]"), int(port_text)
    else:
        host, port = value
    host = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"reachable address {value!r}: host must be an IP address or localhost") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"reachable address {value!r}: only 127.0.0.0/8 addresses can be forwarded")
    if not 0 < int(port) < 65536:
        raise ValueError(f"reachable address {value!r}: port out of range")
    return str(address), int(port)


@dataclass
class _VMNetwork:
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    connections: set[asyncio.Task] = field(default_factory=set)


class NetworkBridge:
    """One event-loop thread forwarding the allowed addresses of every VM of one cloud."""

    def __init__(self, max_connections_per_vm: int = 256, connect_timeout: float = 10.0) -> None:
        self.max_connections_per_vm = max_connections_per_vm
        self.connect_timeout = connect_timeout
        self._vms: dict[str, _VMNetwork] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="localcloud-vm-network",
                                        daemon=True)
        self._thread.start()

    def open(self, vm_id: str, directory: Path, destinations: list[tuple[str, int]],
             metadata_documents: "dict[str, metadata.Document] | None" = None) -> None:
        """Create ``directory`` (it must not exist) with one forwarding socket per destination,
        and one for the metadata service answering ``metadata_documents`` if given."""
        served = list(destinations) + ([metadata.ADDRESS] if metadata_documents is not None else [])
        os.mkdir(directory, 0o755)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        listeners = []
        try:
            for host, port in served:
                name = socket_name(host, port)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listeners.append(listener)
                # Through the directory's descriptor: sandbox paths may exceed sun_path's 108 bytes.
                listener.bind(f"/proc/self/fd/{dir_fd}/{name}")
                os.chmod(name, 0o666, dir_fd=dir_fd)  # every user of the VM may connect
                listener.listen(64)
                listener.setblocking(False)
        except BaseException:
            for listener in listeners:
                listener.close()
            raise
        finally:
            os.close(dir_fd)
        future = asyncio.run_coroutine_threadsafe(
            self._serve(vm_id, list(zip(listeners, served)), metadata_documents), self._loop)
        future.result(timeout=30)

    def close(self, vm_id: str) -> None:
        """Stop forwarding for this VM and cut its open connections (idempotent)."""
        if self._loop.is_closed() or vm_id not in self._vms:
            return
        asyncio.run_coroutine_threadsafe(self._close(vm_id), self._loop).result(timeout=30)

    def connections(self, vm_id: str) -> int:
        network = self._vms.get(vm_id)
        return len(network.connections) if network else 0

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        for vm_id in list(self._vms):
            self.close(vm_id)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, vm_id: str, pairs: list[tuple[socket.socket, tuple[str, int]]],
                     metadata_documents: "dict[str, metadata.Document] | None") -> None:
        network = self._vms.setdefault(vm_id, _VMNetwork())
        for listener, (host, port) in pairs:
            if (host, port) == metadata.ADDRESS:
                async def answer(reader, writer):
                    await self._bounded(network, writer, metadata.serve(metadata_documents, reader, writer))
                network.servers.append(await asyncio.start_unix_server(
                    answer, sock=listener, limit=metadata.MAX_REQUEST_HEAD))
                continue

            async def handle(reader, writer, host=host, port=port):
                await self._forward(network, host, port, reader, writer)
            network.servers.append(await asyncio.start_unix_server(handle, sock=listener))

    async def _close(self, vm_id: str) -> None:
        network = self._vms.pop(vm_id, None)
        if network is None:
            return
        for server in network.servers:
            server.close()
        for task in list(network.connections):
            task.cancel()
        for server in network.servers:
            await server.wait_closed()

    async def _bounded(self, network: _VMNetwork, writer: asyncio.StreamWriter, work) -> None:
        """Run ``work`` (a coroutine serving one connection) within the VM's connection limit."""
        if len(network.connections) >= self.max_connections_per_vm:
            work.close()
            writer.close()
            return
        task = asyncio.current_task()
        network.connections.add(task)
        try:
            await work
        finally:
            network.connections.discard(task)

    async def _forward(self, network: _VMNetwork, host: str, port: int,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(network.connections) >= self.max_connections_per_vm:
            writer.close()
            return
        task = asyncio.current_task()
        network.connections.add(task)
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.connect_timeout)
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            network.connections.discard(task)
            for stream in (writer, upstream_writer):
                if stream is not None:
                    stream.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
