"""Install DIRAC databases with DIRAC's own ComponentInstaller (runs in the server's root).

    DIRAC_ROOT_PATH=<server root> python -m dev.loopback.install_dbs DB [DB ...] < passwords.json

The MySQL passwords come on stdin as ``{"root": ..., "user": ...}`` so that they appear neither
in the command line nor in a file. Host, port and user are read by ComponentInstaller from
``/LocalInstallation/Database`` of the server's dirac.cfg. Extension databases (an ``<DB>.sql``
in an installed extension) are found the same way as DIRAC's own.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    secrets = json.load(sys.stdin)
    import DIRAC

    DIRAC.initialize(require_auth=False)
    from DIRAC import gLogger
    from DIRAC.FrameworkSystem.Client.ComponentInstaller import gComponentInstaller

    gComponentInstaller.exitOnError = False
    gComponentInstaller.setMySQLPasswords(root=secrets["root"], dirac=secrets["user"])
    for db in argv:
        result = gComponentInstaller.installDatabase(db)
        if not result["OK"]:
            gLogger.error(f"Failed to install {db}", result["Message"])
            return 1
        gLogger.notice(f"Installed {db}", "from %s/%s" % tuple(result["Value"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
