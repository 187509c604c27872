"""Inside a LocalCloud VM: make the host addresses the cloud lets it reach answer on its loopback.

The VM has its own network namespace with only ``lo``, which this module brings up. For every
address it may reach the host puts one Unix socket named ``HOST_PORT`` in ``/run/localcloud/net``
(read-only to the VM); this module listens on HOST:PORT inside the VM and relays each connection
to that socket, where the host forwards it to the same address on the host (or, for the metadata
service's 169.254.169.254:80, answers it). An address outside 127.0.0.0/8 is first added to
``lo`` as a /32, as the VM's root may in its own network namespace. The VM may stop or replace
these relays: it only ever reaches what the host side serves.

Runs inside the sandbox: stdlib only (the ioctls of ifconfig, so that no ``ip`` tool is needed).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
import threading

NET_DIR = "/run/localcloud/net"
CHUNK = 65536
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
IFF_UP = 0x1


def socket_name(host: str, port: int) -> str:
    return f"{host}_{port}"


def parse_socket_name(name: str) -> tuple[str, int]:
    host, _, port = name.rpartition("_")
    return host, int(port)


def start(directory: str = NET_DIR) -> list[tuple[str, int]]:
    """Start one relay per socket in ``directory``; returns the addresses now reachable."""
    bring_up_loopback()
    if not os.path.isdir(directory):
        return []
    reachable = []
    aliases = 0
    for name in sorted(os.listdir(directory)):
        host, port = parse_socket_name(name)
        if not ipaddress.ip_address(host).is_loopback:
            aliases += 1
            add_loopback_address(host, f"lo:{aliases}")
        listener = socket.create_server((host, port), backlog=128)
        path = os.path.join(directory, name)
        threading.Thread(target=_accept_loop, args=(listener, path), name=f"relay-{port}",
                         daemon=True).start()
        reachable.append((host, port))
    return reachable


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(address))


def bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        (flags,) = struct.unpack_from("=H", fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq("lo")), 16)
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq("lo", struct.pack("=H", flags | IFF_UP)))


def add_loopback_address(address: str, label: str) -> None:
    """``ip addr add ADDRESS/32 dev lo label LABEL``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFADDR, _ifreq(label, _sockaddr_in(address)))
        fcntl.ioctl(sock, SIOCSIFNETMASK, _ifreq(label, _sockaddr_in("255.255.255.255")))


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
