"""One cheroot WSGI server on 127.0.0.1, random port, port written to a file when listening."""

from __future__ import annotations

import os
import threading

from cheroot import wsgi


def start_server(app, port_file: str, threads: int, name: str) -> wsgi.Server:
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=threads, server_name=name)
    server.prepare()
    port = server.bind_addr[1]
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as handle:
        handle.write(str(port))
    os.replace(tmp, port_file)
    return server


def serve_in_thread(app, port_file: str, threads: int, name: str) -> wsgi.Server:
    server = start_server(app, port_file, threads, name)
    threading.Thread(target=server.serve, name=f"{name}-http", daemon=True).start()
    return server


def serve_forever(app, port_file: str, threads: int, name: str) -> None:
    server = start_server(app, port_file, threads, name)
    try:
        server.serve()
    finally:
        server.stop()
