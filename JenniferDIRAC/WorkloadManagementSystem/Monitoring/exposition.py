"""Serve a registry in Prometheus' text exposition format on its own port.

The VMDirector and the VM endpoint both serve their metrics on a separate port (CS option
``MetricsPort``, 0 = off, ``MetricsHost`` default 127.0.0.1) rather than on the endpoint's own
port: the endpoint's port is reachable by every VM, and VMs are hostile; figures about the whole
fleet are for the operators' Prometheus only, and a port of its own can be firewalled to it and
is never subject to the per-VM admission limits.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


def metrics_port(value, option: str = "MetricsPort") -> int:
    """The port of CS option `option` (0 = metrics off); ValueError naming the option otherwise."""
    try:
        port = int(str(value).strip() or "0")
    except ValueError:
        raise ValueError(f"option {option}: {value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"option {option}: {port} is not a port number (0 = off)")
    return port


def serve(registry: CollectorRegistry, host: str, port: int):
    """Start the exposition HTTP server (a daemon thread); returns (server, bound port)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, server.server_address[1]
