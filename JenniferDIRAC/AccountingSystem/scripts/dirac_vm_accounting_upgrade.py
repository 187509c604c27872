#!/usr/bin/env python
"""Upgrade the VirtualMachine accounting type of an AccountingDB made by JenniferDIRAC v0.1.0.

Adds the key BenchmarkSource (old records: Unknown) and the values CPUTime and NormCPUTime
(old records: 0) in place; the old records stay in every plot. Run once on the Accounting server
(it needs the AccountingDB's connection options), then restart Accounting/DataStore and
Accounting/ReportGenerator. Running it again changes nothing.

Exit codes: 0 upgraded or already current, 1 usage error (an unknown command-line option), 2 the
database could not be changed.
"""

import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

    VMAdmin.parse_command_line()  # a usage error exits 1, as every dirac-vm-* command
    from DIRAC import gLogger
    from DIRAC.Core.Base.DB import DB

    from JenniferDIRAC.AccountingSystem.DB.TypeUpgrade import upgrade_type

    result = upgrade_type(DB("AccountingDB", "Accounting/AccountingDB"))
    if not result["OK"]:
        gLogger.error(result["Message"])
        DIRAC.exit(2)
    added = result["Value"]["added"]
    print(
        f"added {', '.join(added)}; restart Accounting/DataStore and Accounting/ReportGenerator"
        if added
        else "the VirtualMachine accounting type is current"
    )
    DIRAC.exit(0)


if __name__ == "__main__":
    sys.exit(main())
