"""Merge CFG text (on stdin) into the running master CS with DIRAC's CSAPI and commit it.

    DIRAC_ROOT_PATH=<server root> python -m dev.loopback.cs_update < extra.cfg

Runs with the server's host certificate (CSAdministrator). Components started afterwards see
the change at once; running ones at their next configuration refresh.
"""

from __future__ import annotations

import sys


def main() -> int:
    text = sys.stdin.read()
    import DIRAC

    DIRAC.initialize()
    from DIRAC import gLogger
    from DIRAC.ConfigurationSystem.Client.CSAPI import CSAPI
    from diraccfg import CFG

    api = CSAPI()
    result = api.initialize()
    if not result["OK"]:
        gLogger.error("Cannot reach the master CS", result["Message"])
        return 1
    result = api.mergeWithCFG(CFG().loadFromBuffer(text))
    if not result["OK"]:
        gLogger.error("Cannot merge the configuration", result["Message"])
        return 1
    result = api.commit()
    if not result["OK"]:
        gLogger.error("Cannot commit the configuration", result["Message"])
        return 1
    gLogger.notice("Configuration committed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
