"""Write accounting records through DIRAC's DataStore.

Run in the loopback server's environment (host credentials):

    python tests/accounting/accounting_load.py < dataset.json

The Job records as DIRAC's JobWrapper builds them (``Job`` type, its acData) and the
VirtualMachine records as the VMDirector sends them (``APEL.send_dirac_records``).
"""

import datetime as dt
import json
import sys


def _when(iso):
    return dt.datetime.fromisoformat(iso) if iso else None


def send(data):
    from DIRAC.AccountingSystem.Client.DataStoreClient import gDataStoreClient
    from DIRAC.AccountingSystem.Client.Types.Job import Job

    from JenniferDIRAC.WorkloadManagementSystem.Accounting import APEL

    for job in data["jobs"]:
        register = Job()
        register.setStartTime(_when(job["start"]))
        register.setEndTime(_when(job["end"]))
        register.setValuesFromDict(job["values"])
        result = register.checkValues()
        if not result["OK"]:
            raise SystemExit(f"bad Job record: {result['Message']}")
        gDataStoreClient.addRegister(register)
    result = gDataStoreClient.commit()
    if not result["OK"]:
        raise SystemExit(f"Job records: {result['Message']}")

    vms = []
    for vm in data["vms"]:
        vm = dict(vm)
        for key in ("created", "started", "ended", "deleted", "end"):
            vm[key] = _when(vm.get(key))
        vms.append(vm)
    settings = APEL.AccountingSettings(
        fizzle_seconds=600,
        hs06_per_core=lambda vm: vm["hs06"],
        flavor_properties=lambda vm: vm["flavor_properties"],
    )
    result = APEL.send_dirac_records(vms, settings)
    if not result["OK"]:
        raise SystemExit(result["Message"])
    print(f"sent {len(data['jobs'])} Job and {len(vms)} VirtualMachine records")


def main():
    import DIRAC

    DIRAC.initialize()
    send(json.load(sys.stdin))


if __name__ == "__main__":
    main()
