"""Inside a LocalCloud VM: make the host addresses the cloud lets it reach answer on its loopback.

The VM has its own network namespace with only ``lo``. For every address it may reach the host
puts one Unix socket named ``HOST_PORT`` in ``/run/localcloud/net`` (read-only to the VM); this
module listens on HOST:PORT inside the VM and relays each connection to that socket, where the
host forwards it to the same address on the host. The VM may stop or replace these relays: it
only ever reaches what the host side forwards.

Runs inside the sandbox: stdlib only.
"""

from __future__ import annotations

import os
import socket
import threading

NET_DIR = "/run/localcloud/net"
CHUNK = 65536


def socket_name(host: str, port: int) -> str:
    return f"{host}_{port}"


def parse_socket_name(name: str) -> tuple[str, int]:
    host, _, port = name.rpartition("_")
    return host, int(port)


def start(directory: str = NET_DIR) -> list[tuple[str, int]]:
    """Start one relay per socket in ``directory``; returns the addresses now reachable."""
    if not os.path.isdir(directory):
        return []
    reachable = []
    for name in sorted(os.listdir(directory)):
        host, port = parse_socket_name(name)
        listener = socket.create_server((host, port), backlog=128)
        path = os.path.join(directory, name)
        threading.Thread(target=_accept_loop, args=(listener, path), name=f"relay-{port}",
                         daemon=True).start()
        reachable.append((host, port))
    return reachable


def _accept_loop(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_relay, args=(client, path), daemon=True).start()


def _relay(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass
