"""Set every Site and Resource known to the Resource Status System to Active.

Run after ``dirac-rss-sync`` with the server's environment (host certificate): new elements
start in a non-usable state, and JobScheduling / SiteDirector only use Active sites and CEs.
"""

from __future__ import annotations

import sys


def main() -> int:
    import DIRAC

    DIRAC.initialize()
    from DIRAC import gLogger
    from DIRAC.ResourceStatusSystem.Client.ResourceStatusClient import ResourceStatusClient

    client = ResourceStatusClient()
    for element in ("Site", "Resource"):
        result = client.selectStatusElement(element, "Status", meta={"columns": ["Name", "StatusType", "Status"]})
        if not result["OK"]:
            gLogger.error(f"Cannot list {element} statuses", result["Message"])
            return 1
        for name, status_type, status in result["Value"]:
            if status == "Active":
                continue
            result = client.modifyStatusElement(
                element, "Status", name=name, statusType=status_type, status="Active", reason="loopback set-up"
            )
            if not result["OK"]:
                gLogger.error(f"Cannot activate {element} {name}", result["Message"])
                return 1
            gLogger.notice(f"{element} {name} ({status_type}): Active")
    return 0


if __name__ == "__main__":
    sys.exit(main())
