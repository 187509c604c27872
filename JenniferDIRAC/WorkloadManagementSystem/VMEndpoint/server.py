"""Serve the VM endpoint's WSGI app over HTTP(S) from a background thread (werkzeug's threaded
server: one thread per request, bounded by the app's MaxConcurrentRequests)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


@dataclass(frozen=True)
class TLSFiles:
    cert_file: str
    key_file: str


class _Handler(WSGIRequestHandler):
    # A client that stops sending is dropped instead of holding a thread forever.
    timeout = 30
    #: Set per server. The TLS handshake happens here, in the request's own thread: werkzeug's
    #: own ssl_context would handshake in accept(), where one silent client blocks everyone.
    tls_context: ssl.SSLContext | None = None

    def setup(self):
        if self.tls_context is not None:
            self.request.settimeout(self.timeout)
            self.request = self.tls_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_request(self, code="-", size="-"):
        pass  # the app counts and logs what matters; no per-request access log with tokens

    def log_error(self, format, *args):
        pass


class EndpointServer:
    """The HTTP(S) server of one VM endpoint; start() binds, stop() releases the port."""

    def __init__(self, app, host: str, port: int, tls: TLSFiles | None = None):
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        return context

    def start(self) -> None:
        """Bind and serve; raises OSError (port taken) or ssl.SSLError (bad certificate) here."""
        handler = type("VMEndpointHandler", (_Handler,), {"tls_context": self._ssl_context()})
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # failed handshakes, resets
        self.port = self._server.server_port  # the real port when 0 was asked for
        self._thread = threading.Thread(target=self._server.serve_forever, name="VMEndpoint-http", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"{scheme}://{host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
