#!/usr/bin/env python
"""Check a cloud CE's configuration against its cloud, for every queue of the CE, one line per
check: config (with a WARN line per unknown option), auth, image, flavor, network, quota (how
many more VMs the CE itself would offer now: the CE's own getCEStatus / available, with the
project quota, QuotaShare, MaxStartingVMs, backoff, MaxTotalJobs and MaxWaitingJobs), user-data
(the rendered cloud-init for a representative pilot: size against the cloud's limit, and
cloud-init's schema).

Each line gives a verdict (OK, WARN, FAIL, SKIP) and, for WARN and FAIL, the CS option to fix.
Nothing is created in the cloud. Exit codes: 0 no check failed (warnings allowed), 1 usage error
or the CE is not configured, 3 at least one check FAILED.

Example:
  $ dirac-vm-check-ce cloud.example.org
"""
import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import Switches

    switches = Switches(wrapper=None)
    switches.value("wrapper", "size the user data with this pilot wrapper file")
    options = switches.options
    Script.registerArgument(["CE: name of the cloud CE"])
    _, ces = VMAdmin.parse_command_line()

    from JenniferDIRAC.WorkloadManagementSystem.Admin.CECheck import FAIL, check_ce

    # The checks report what the CE logs (unknown options, template problems) as lines of their own.
    VMAdmin.quiet_logs(machine_output=True)
    wrapper = None
    if options.wrapper:
        try:
            with open(options.wrapper, encoding="utf-8") as handle:
                wrapper = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"Cannot read the wrapper: {exc}", file=sys.stderr)
            DIRAC.exit(VMAdmin.EXIT_USAGE)

    failed = False
    for ce_name in ces:
        result = VMAdmin.ce_queues(ce_name)
        if not result["OK"]:
            print(result["Message"], file=sys.stderr)
            DIRAC.exit(VMAdmin.EXIT_USAGE)
        for queue, params in result["Value"].items():
            print(f"CE {ce_name} queue {queue}")
            for check in check_ce(ce_name, params, wrapper):
                print(check.line())
                failed = failed or check.verdict == FAIL
    DIRAC.exit(VMAdmin.EXIT_PARTIAL if failed else VMAdmin.EXIT_OK)


if __name__ == "__main__":
    main()
