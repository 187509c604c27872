#!/usr/bin/env python
"""List the cloud VMs of this installation: site, CE, VM, state, age, pilot reference and status, VO.

Deleted VMs are left out unless --all or --state=DELETED is given. States are the cloud's
(BUILD, ACTIVE, SHUTOFF, ERROR, DELETING, UNKNOWN) or DELETED. Exit codes: 0 success (also when
nothing matches), 1 usage error, 2 the VM state database or service (or PilotAgentsDB / the
PilotManager service, for the pilot statuses) could not be used. With --json, stdout is exactly
one JSON document; everything else goes to stderr.

With --backoffs, the CEs (and profiles) that are backing off after failures are listed
instead: until when, why, how many failures, and the probe VM allowed meanwhile.

Example:
  $ dirac-vm-list --ce cloud.example.org --state ACTIVE,BUILD
  $ dirac-vm-list --all --json
  $ dirac-vm-list --backoffs
"""
import datetime as dt
import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


#: the switches that filter the VMs by a field of their record
FILTERS = ("ce", "site", "vo")


def declare_switches():
    """The command's switches; their values in the returned ``options``."""
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import (
        Switches,
        comma_list,
        positive_whole_number,
        upper_comma_list,
    )

    switches = Switches(ce=None, site=None, vo=None, states=[], include_deleted=False, json=False, limit=None,
                        backoffs=False)
    switches.value("ce", "only VMs of these CEs (comma separated)", comma_list)
    switches.value("site", "only VMs of these sites (comma separated)", comma_list)
    switches.value("vo", "only VMs of these VOs (comma separated)", comma_list)
    switches.value("state", "only VMs in these states (comma separated; DELETED too)", upper_comma_list, "states")
    switches.flag("all", "include deleted VMs", "include_deleted")
    switches.flag("json", "print a JSON list instead of a table")
    switches.value("limit", "at most this many VMs, newest first", positive_whole_number)
    switches.flag("backoffs", "list the CEs backing off instead of VMs")
    return switches.options


def record_filters(options) -> dict[str, list[str]]:
    """The filters given (--ce, --site, --vo), as VMStateClient.getVMs takes them."""
    return {key: getattr(options, key) for key in FILTERS if getattr(options, key) is not None}


def show_backoffs(options, machine):
    from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

    result = VMStateClient().getBackoffs()
    if not result["OK"]:
        print(VMAdmin.vm_state_error(result["Message"]), file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
    rows = [b for b in result["Value"] if not options.ce or b["ce"] in options.ce]
    if machine:
        machine.emit(VMAdmin.backoffs_json(rows))
    elif rows:
        print(VMAdmin.format_table(VMAdmin.BACKOFF_COLUMNS, VMAdmin.backoff_rows(rows)))
    else:
        print("No CE is backing off.")
    DIRAC.exit(VMAdmin.EXIT_OK)


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

    machine = VMAdmin.MachineOutput() if VMAdmin.requested("json") else None
    options = declare_switches()
    VMAdmin.parse_command_line()

    from JenniferDIRAC.WorkloadManagementSystem.Admin.VMAdmin import DELETED

    VMAdmin.quiet_logs(machine_output=options.json)

    known = {"BUILD", "ACTIVE", "SHUTOFF", "ERROR", "DELETING", "UNKNOWN", DELETED}
    unknown = [s for s in options.states if s not in known]
    if unknown:
        print(f"Unknown state(s) {', '.join(unknown)}; use {', '.join(sorted(known))}", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)

    from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

    if options.backoffs:
        show_backoffs(options, machine)

    cloud_states = [s for s in options.states if s != DELETED]
    only_deleted = options.states == [DELETED]
    active_only = not (options.include_deleted or DELETED in options.states)
    result = VMStateClient().getVMs(
        active_only=active_only,
        states=cloud_states if cloud_states and DELETED not in options.states else None,
        limit=options.limit,
        **record_filters(options),
    )
    if not result["OK"]:
        print(VMAdmin.vm_state_error(result["Message"]), file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
    vms = VMAdmin.select_vms(result["Value"], options.states, include_deleted=not active_only)
    if only_deleted:
        vms = [vm for vm in vms if vm.get("deleted")]
    result = VMAdmin.pilot_statuses([vm.get("pilot_reference") for vm in vms])
    if not result["OK"]:
        print(result["Message"], file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
    statuses = result["Value"]
    now = dt.datetime.now(dt.timezone.utc)
    if machine:
        machine.emit(VMAdmin.list_json(vms, statuses, now))
    elif vms:
        print(VMAdmin.format_table(VMAdmin.LIST_COLUMNS, VMAdmin.list_rows(vms, statuses, now)))
    else:
        print("No VMs match.")
    DIRAC.exit(VMAdmin.EXIT_OK)


if __name__ == "__main__":
    main()
