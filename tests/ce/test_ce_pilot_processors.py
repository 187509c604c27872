"""The pilot starts with the cores of the flavor its VM landed on, as its own options.

DIRAC's pilot wrapper (PilotWrapper.pilotWrapperScript, options as the SiteDirector writes
them) runs in a booted LocalCloud VM created on the 2-core m1.medium after the cloud refused the
4-core m1.large for capacity; the stand-in ``dirac-pilot.py`` it unpacks prints the arguments it
was started with, read here as DIRAC's Pilot reads them (getopt). The accounting records of the
VM count the same cores.
"""

from __future__ import annotations

import datetime as dt
import getopt
import json
import re

import pytest
from ce_testkit import CE_NAME, SITE, VO, live_servers
from waiting import wait_until

from JenniferDIRAC.Resources.Cloud.errors import CapacityExhausted
from JenniferDIRAC.Resources.Computing.CloudCE.pilotoptions import with_flavor_processors
from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

QUEUE = "default"
#: what DIRAC's SiteDirector._getPilotOptions gives a queue (-N is the CE name for the Pilot)
PILOT_OPTIONS = f"-N {CE_NAME} -Q {QUEUE} -n {SITE} --wnVO={VO} -o /LocalSite/X=y"
STAND_IN_PILOT = "import json, sys\nprint('JDIRAC-PILOT-ARGV ' + json.dumps(sys.argv[1:]))\n"
#: the options of DIRACGrid/Pilot's pilotTools the wrapper passes here
SHORT, LONG = "N:Q:n:o:P:", ["wnVO=", "pilotProcessors=", "pilotUUID=", "Name=", "option="]


def dirac_wrapper(tmp_path) -> str:
    from DIRAC.WorkloadManagementSystem.Utilities.PilotWrapper import (
        getPilotFilesCompressedEncodedDict,
        pilotWrapperScript,
    )

    pilot = tmp_path / "dirac-pilot.py"
    pilot.write_text(STAND_IN_PILOT)
    path = tmp_path / "wrapper.sh"
    path.write_text(pilotWrapperScript(getPilotFilesCompressedEncodedDict([str(pilot)]), PILOT_OPTIONS))
    return str(path)


def pilot_arguments(log_text: str) -> list[str]:
    match = re.search(r"^JDIRAC-PILOT-ARGV (.*)$", log_text, re.M)
    assert match, log_text[-3000:]
    return json.loads(match.group(1))


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_a_pilot_after_a_fallback_runs_with_the_cores_of_its_flavor(make_ce, local_cloud, vmdb, tmp_path, monkeypatch):
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    ce = make_ce(Instance_Flavor="name:m1.large, name:m1.medium", Queue=QUEUE)
    backend = ce._getBackend()
    large = backend.resolve_flavor("name:m1.large")
    assert large.vcpus == 4 and backend.resolve_flavor("name:m1.medium").vcpus == 2
    real_create, refused = backend.create_vm, []

    def create_vm(spec):  # the edge: the cloud refuses the create itself, as EC2 does
        if spec.flavor_id == large.id:
            refused.append(spec.name)
            raise CapacityExhausted("InsufficientInstanceCapacity: no m1.large capacity")
        return real_create(spec)

    backend.create_vm = create_vm
    result = ce.submitJob(dirac_wrapper(tmp_path), "", 1)
    assert result["OK"], result.get("Message")
    (server,) = live_servers(local_cloud)
    assert refused == [server.name] and server.flavor.name == "m1.medium"

    wait_until(lambda: local_cloud.compute.servers[server.id].status == "SHUTOFF", 120, "the VM to power off")
    sandbox = local_cloud.booter.sandbox(server.id)
    log_file = sandbox.fs / "var" / "log" / "jdirac-pilot.log"
    assert log_file.is_file(), sandbox.console.read_text()[-3000:]
    options, _ = getopt.getopt(pilot_arguments(log_file.read_text()), SHORT, LONG)
    assert [v for o, v in options if o in ("-P", "--pilotProcessors")] == ["2"]
    generic = [v for o, v in options if o in ("-o", "--option")]
    assert generic == ["/Resources/Computing/CEDefaults/NumberOfProcessors=2", "/LocalSite/X=y"]  # the admin's stays last
    assert [v for o, v in options if o == "-N"] == [CE_NAME]
    assert [v for o, v in options if o == "--pilotUUID"] == [result["PilotStampDict"][result["Value"][0]]]

    # accounting: the VM record holds the flavor it landed on, and every record counts its cores
    from JenniferDIRAC.WorkloadManagementSystem.Accounting.APEL import (
        AccountingSettings,
        apel_record,
        cloud_record,
        dirac_accounting_record,
    )

    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    assert vmdb.db.setVMStates({server.name: {"state": "SHUTOFF", "started": started,
                                              "ended": started + dt.timedelta(hours=1)}})["OK"]
    (vm,) = [r for r in vmdb.db.getAccountingRecords(ce=CE_NAME)["Value"] if r["vm_name"] == server.name]
    assert (vm["flavor"], vm["cores"]) == ("m1.medium", 2)
    settings = AccountingSettings(site_name=lambda site: site)
    assert apel_record(vm, settings).processors == 2
    assert cloud_record(vm, settings).cpu_count == 2
    register = dirac_accounting_record(vm, settings)["Value"]
    assert register.getValue("Cores")["Value"] == 2 and register.getValue("CoreWallTime")["Value"] == 2 * 3600


def test_only_dirac_wrappers_are_changed_and_only_once(tmp_path):
    wrapper = open(dirac_wrapper(tmp_path)).read()
    changed = with_flavor_processors(wrapper)
    assert changed is not None and changed != wrapper
    assert with_flavor_processors(changed) == changed
    added = "".join(line for line in changed.splitlines(True) if line not in wrapper.splitlines(True))
    assert "JenniferDIRAC" in added and not set("$`\\") & set(added)  # inside bash's unquoted heredoc
    assert with_flavor_processors("#!/bin/bash\necho 'not DIRAC'\n") is None
    assert with_flavor_processors('opt = "-N a"\nopt = "-N b"\n') is None  # ambiguous: left alone
