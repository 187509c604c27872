"""Serve the VM endpoint's ASGI app with uvicorn from a background thread of the agent.

Why uvicorn: it is what DiracX (DIRAC's next generation) serves its FastAPI services with, so the
endpoint can later move into DiracX as it is; it is asyncio-based, so a connection that waits
(idle, slow headers, slow body) costs a few kilobytes and no thread (v0.1.0's werkzeug server
started one thread per connection: 1,000 idle sockets = 1,003 threads); and it has the bounds a
production server needs, completed here where it lacks one:

- connections: ``MaxConnections`` (uvicorn's ``limit_concurrency``: beyond it every request gets
  503 until connections close) and ``Backlog`` (the listen queue); the process's soft file limit is
  raised to fit them;
- request head: ``HeaderTimeout`` from connect or from the previous response (protocol.py), at
  most 16 KiB of head (h11), TLS handshake bounded by asyncio (60 s);
- idle keep-alive: ``KeepAliveTimeout``;
- the body, the requests in progress, per-VM admission and database threads: the app (app.py).

uvicorn's own log lines (e.g. one per request refused at the connection limit) go through the
app's rate-limited refusal log, never one line per request.
"""

from __future__ import annotations

import logging
import resource
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import uvicorn

from .protocol import bounded_protocol

#: File descriptors kept for everything but client connections (database, logs, CS, ...).
_RESERVED_FDS = 256


@dataclass(frozen=True)
class TLSFiles:
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class ServerBounds:
    max_connections: int = 4096
    backlog: int = 2048
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: float = 5.0
    max_head_bytes: int = 16384


class _ToEndpointLog(logging.Handler):
    """uvicorn's records into the endpoint's log: warnings rate-limited, errors as errors."""

    def __init__(self, app):
        super().__init__(logging.INFO)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = "HTTP server: " + record.getMessage()[:300]
        except Exception:  # noqa: BLE001 - a malformed record must not break the server
            return
        refusals = getattr(self.app, "refusals", None)
        if record.levelno >= logging.ERROR:
            getattr(self.app, "log", lambda level, text: None)("error", message)
        elif record.levelno >= logging.WARNING and refusals is not None:
            refusals.refused("HTTP server", message)


def _listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP listening socket made as asyncio's create_server makes it. With protocol IPPROTO_TCP
    (socket.create_server leaves 0), asyncio sets TCP_NODELAY on each accepted connection; without
    it, Nagle's algorithm held every response's body behind its headers for a delayed ACK (40 ms)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _fit_file_limit(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE so that max_connections fit; returns the connections that do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _RESERVED_FDS))


class EndpointServer:
    """The HTTP(S) server of one VM endpoint; start() binds and serves, stop() releases the port."""

    def __init__(self, app, host: str, port: int, tls: TLSFiles | None = None, bounds: ServerBounds | None = None):
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self.bounds = bounds or ServerBounds()
        self.max_connections = self.bounds.max_connections
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._log_handler: logging.Handler | None = None

    def _config(self) -> uvicorn.Config:
        self.max_connections = _fit_file_limit(self.bounds.max_connections)
        config = uvicorn.Config(
            self.app,
            http=bounded_protocol(self.bounds.header_timeout_seconds),
            lifespan="on",
            log_config=None,
            access_log=False,  # tokens never in an access log; the app counts responses
            server_header=False,
            limit_concurrency=self.max_connections,
            backlog=self.bounds.backlog,
            timeout_keep_alive=self.bounds.keep_alive_seconds,
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=self.bounds.max_head_bytes,
            ssl_certfile=self.tls.cert_file if self.tls else None,
            ssl_keyfile=self.tls.key_file if self.tls else None,
        )
        config.load()  # here, in the caller's thread: a bad certificate raises ssl.SSLError now
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        return config

    def start(self) -> None:
        """Bind and serve; raises OSError (port taken, unreadable certificate) or ssl.SSLError here."""
        config = self._config()
        sock = _listening_socket(self.host, self.port, self.bounds.backlog)
        self.port = sock.getsockname()[1]  # the real port when 0 was asked for
        self._install_log_handler()
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="VMEndpoint-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise OSError(f"the HTTP server on port {self.port} did not start")
            time.sleep(0.01)
        self._socket = sock

    def _install_log_handler(self) -> None:
        logger = logging.getLogger("uvicorn")
        if self._log_handler is not None:
            logger.removeHandler(self._log_handler)
        self._log_handler = _ToEndpointLog(self.app)
        logger.addHandler(self._log_handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        # One line per request would be a log flood (and a place for tokens); the app counts.
        logging.getLogger("uvicorn.access").disabled = True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connections(self) -> int:
        return len(self._server.server_state.connections) if self._server else 0

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"{scheme}://{host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
            self._socket = None
        if self._log_handler is not None:
            logging.getLogger("uvicorn").removeHandler(self._log_handler)
            self._log_handler = None
        self._server = None
        self._thread = None
