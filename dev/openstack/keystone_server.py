"""Serve real Keystone (its WSGI application) with cheroot on 127.0.0.1.

Run with .venv-openstack's python by dev/openstack/launcher.py:
    keystone_server.py <config file> <port file>
The config file names the sqlite database, the fernet and credential key folders and the log
file; the chosen port is written to <port file> once the socket listens.
"""

from __future__ import annotations

import os
import signal
import sys

from servelib import serve_forever


def main() -> None:
    config_file, port_file = sys.argv[1], sys.argv[2]
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = config_file
    sys.argv = sys.argv[:1]  # keystone.wsgi.api parses sys.argv when imported
    from keystone.wsgi.api import application

    serve_forever(application, port_file, threads=8, name="keystone")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
