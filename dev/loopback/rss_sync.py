"""Synchronise the Resource Status System with the CS and make every Site and Resource Active.

What ``dirac-rss-sync --element all --defaultStatus Active`` does (DIRAC's own Synchronizer),
plus activation of elements that an earlier sync left in another status, in one process. Run with
the server's environment (host certificate). Without it JobScheduling fails jobs ("RSS cache
empty") and the SiteDirector ignores the CEs.
"""

from __future__ import annotations

import sys


def main() -> int:
    import DIRAC

    DIRAC.initialize()
    from DIRAC import gLogger
    from DIRAC.ResourceStatusSystem.Client.ResourceStatusClient import ResourceStatusClient
    from DIRAC.ResourceStatusSystem.Utilities.Synchronizer import Synchronizer

    synchronizer = Synchronizer(defaultStatus="Active")
    for step in (synchronizer._syncSites, synchronizer._syncResources):
        result = step()
        if not result["OK"]:
            gLogger.error("RSS synchronisation failed", result["Message"])
            return 1

    client = ResourceStatusClient()
    for element in ("Site", "Resource"):
        result = client.selectStatusElement(
            element, "Status", meta={"columns": ["Name", "StatusType", "Status"]}
        )
        if not result["OK"]:
            gLogger.error(f"Cannot list {element} statuses", result["Message"])
            return 1
        for name, status_type, status in result["Value"]:
            if status == "Active":
                continue
            result = client.modifyStatusElement(
                element,
                "Status",
                name=name,
                statusType=status_type,
                status="Active",
                reason="loopback set-up",
            )
            if not result["OK"]:
                gLogger.error(f"Cannot activate {element} {name}", result["Message"])
                return 1
            gLogger.notice(f"{element} {name} ({status_type}): Active")
    return 0


if __name__ == "__main__":
    sys.exit(main())
