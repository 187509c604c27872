#!/usr/bin/env python
"""Delete cloud VMs of this installation, chosen by pilot reference / VM name, CE or state.

The VMs are deleted through their CE (its own cloud credentials and ownership checks) and
marked deleted in the VM state database. Deleted VMs' pilots are made final by the VMDirector.
At least one of: references, --ce, --state. Exit codes: 0 all deleted (or --dry-run),
1 usage error, 2 the VM state database or service could not be used, 3 some VMs could not be
deleted, 4 nothing matched.

Example:
  $ dirac-vm-kill cloud://cloud.example.org/jdirac-0123...  (or the VM name)
  $ dirac-vm-kill --ce cloud.example.org --state ERROR,SHUTOFF --dry-run
"""
import datetime as dt
import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import Switches, comma_list, upper_comma_list

    switches = Switches(ces=[], states=[], dry_run=False, reason="killed by an administrator (dirac-vm-kill)")
    switches.value("ce", "VMs of these CEs (comma separated)", comma_list, "ces")
    switches.value("state", "VMs in these cloud states (comma separated)", upper_comma_list, "states")
    switches.flag("dry-run", "only show what would be deleted")
    switches.value("reason", "reason recorded for the deletion")
    options = switches.options
    Script.registerArgument(["Reference: pilot reference or VM name"], mandatory=False)
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

    _, references = VMAdmin.parse_command_line()

    from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

    VMAdmin.quiet_logs()
    references = [r for r in references if r]
    if not (references or options.ces or options.states):
        print("Give pilot references / VM names, --ce or --state (see --help)", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)
    known = {"BUILD", "ACTIVE", "SHUTOFF", "ERROR", "DELETING", "UNKNOWN"}
    if set(options.states) - known:
        print(f"Unknown state(s) {', '.join(sorted(set(options.states) - known))}; use {', '.join(sorted(known))}",
              file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)

    client = VMStateClient()
    result = client.getVMs(ce=options.ces or None, active_only=True, states=options.states or None)
    if not result["OK"]:
        print(VMAdmin.vm_state_error(result["Message"]), file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
    vms = result["Value"]
    if references:
        vms, unknown = VMAdmin.match_references(vms, references)
        for item in unknown:
            print(f"No live VM matches {item}", file=sys.stderr)
    if not vms:
        print("No VMs match.")
        DIRAC.exit(VMAdmin.EXIT_NOTHING)

    now = dt.datetime.now(dt.timezone.utc)
    print(VMAdmin.format_table(VMAdmin.LIST_COLUMNS, VMAdmin.list_rows(vms, {}, now)))
    if options.dry_run:
        print(f"Dry run: {len(vms)} VM(s) would be deleted.")
        DIRAC.exit(VMAdmin.EXIT_OK)

    by_ce = {}
    for vm in vms:
        by_ce.setdefault(vm["ce"], []).append(vm)
    deleted, failed = 0, 0
    for ce_name, ce_vms in sorted(by_ce.items()):
        result = VMAdmin.make_ce(ce_name)
        if result["OK"]:
            ce = result["Value"]
            result = ce.killJob([vm["pilot_reference"] or vm["vm_name"] for vm in ce_vms], reason=options.reason)
            if hasattr(ce, "shutdown"):
                ce.shutdown()
        if not result["OK"]:
            print(f"Could not delete {len(ce_vms)} VM(s) of {ce_name}: {result['Message']}", file=sys.stderr)
            failed += len(ce_vms)
            continue
        marked = client.markVMsDeleted([vm["vm_name"] for vm in ce_vms], options.reason)
        if not marked["OK"]:
            print(f"Deleted, but not recorded in the VM state: {marked['Message']}", file=sys.stderr)
        for vm in ce_vms:
            print(f"Deleted {vm['vm_name']} ({ce_name})")
        deleted += len(ce_vms)
    print(f"{deleted} VM(s) deleted, {failed} failed.")
    DIRAC.exit(VMAdmin.EXIT_PARTIAL if failed else VMAdmin.EXIT_OK)


if __name__ == "__main__":
    main()
