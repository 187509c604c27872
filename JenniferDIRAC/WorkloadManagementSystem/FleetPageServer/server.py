"""Serve the fleet page with uvicorn over TLS that requires a client certificate of the DIRAC CA
(the CA directory DIRAC uses, X509_CERT_DIR), from a background thread."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import uvicorn

from .tlsprotocol import ClientCertH11Protocol


class FleetPageServer:
    def __init__(self, app, host: str, port: int, cert_file: str, key_file: str, ca_dir: str):
        self.app, self.host, self.port = app, host, port
        self.cert_file, self.key_file, self.ca_dir = cert_file, key_file, ca_dir
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def _config(self) -> uvicorn.Config:
        config = uvicorn.Config(
            self.app,
            http=ClientCertH11Protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=256,
            ssl_certfile=self.cert_file,
            ssl_keyfile=self.key_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED,
        )
        config.load()  # a bad certificate raises ssl.SSLError here, in the caller's thread
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        config.ssl.load_verify_locations(capath=self.ca_dir)
        return config

    def start(self) -> None:
        config = self._config()
        sock = socket.create_server((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="FleetPage-https", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise OSError(f"the fleet page server on port {self.port} did not start")
            time.sleep(0.01)
        self._socket = sock

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        return f"https://{'127.0.0.1' if self.host in ('', '0.0.0.0') else self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = self._thread = None
