#!/usr/bin/env python
"""Show the logs of a cloud VM: its console log (from the cloud, while the VM exists) and the
logs it uploaded to the VM endpoint (boot log, shutdown message, ...; kept in the VM state
database after the VM is gone).

Logs are printed with control characters escaped (a VM writes them); --output-dir keeps the
bytes as they came. Exit codes: 0 logs shown, 1 usage error, 2 the VM state database or service
could not be used, 3 the console log could not be read and no uploaded log exists, 4 no such VM.

Example:
  $ dirac-vm-logs jdirac-0123...          (or the pilot reference)
  $ dirac-vm-logs --kind shutdown_message cloud://cloud.example.org/jdirac-0123...
"""
import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


def console_log(vm):
    """(text, None) or (None, why not)."""
    from JenniferDIRAC.Resources.Cloud.errors import CloudError
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

    if vm.get("deleted"):
        return None, "the VM was deleted"
    try:
        config, backend = VMAdmin.cloud_access(vm["ce"])
    except (CloudError, ValueError) as exc:
        return None, str(exc)
    try:
        found = backend.find_vm_by_name(vm["vm_name"], config.owner())
        if found is None:
            return None, "the VM no longer exists in the cloud"
        return backend.console_log(found.id), None
    except CloudError as exc:
        return None, str(exc)
    finally:
        backend.close()


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import Switches, comma_list

    switches = Switches(kinds=[], console=True, output_dir="")
    switches.value("kind", "only these uploaded logs (comma separated)", comma_list, "kinds")
    switches.flag("no-console", "do not ask the cloud for the console log", "console", False)
    switches.value("output-dir", "write each log to a file in this directory")
    options = switches.options
    Script.registerArgument("Reference: pilot reference or VM name")
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

    _, args = VMAdmin.parse_command_line()

    import os

    from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

    VMAdmin.quiet_logs()
    reference = args[0]
    client = VMStateClient()
    name = reference.split(":::", 1)[0]
    if name.startswith("cloud://"):
        result = client.getVMs(pilot_references=[name])
    else:
        result = client.getVMs(names=[name])
    if not result["OK"]:
        print(VMAdmin.vm_state_error(result["Message"]), file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
    if not result["Value"]:
        print(f"No VM {reference} in the VM state database", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_NOTHING)
    vm = result["Value"][0]

    sections = []
    if options.console:
        text, why = console_log(vm)
        if text is not None:
            sections.append(("console", text.encode() if isinstance(text, str) else text))
        else:
            print(f"No console log for {vm['vm_name']}: {why}", file=sys.stderr)
    logs = client.getLogs(vm["vm_name"])
    if not logs["OK"]:
        print(f"Cannot read uploaded logs: {logs['Message']}", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
    for kind in sorted(logs["Value"]):
        if not options.kinds or kind in options.kinds:
            sections.append((f"uploaded {kind}", logs["Value"][kind]))
    if not sections:
        print(f"No logs for {vm['vm_name']}", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_PARTIAL)

    if options.output_dir:
        os.makedirs(options.output_dir, exist_ok=True)
        for title, content in sections:
            path = os.path.join(options.output_dir, f"{vm['vm_name']}.{title.replace(' ', '-')}.log")
            with open(path, "wb") as out:
                out.write(content)
            print(f"Wrote {path}")
    else:
        for title, content in sections:
            print(f"==== {title} log of {vm['vm_name']} ({vm['ce']}) ====")
            # VM-supplied bytes: terminal control sequences are shown, never obeyed
            print(VMAdmin.printable(content.decode("utf-8", errors="replace")).rstrip("\n"))
    DIRAC.exit(VMAdmin.EXIT_OK)


if __name__ == "__main__":
    main()
