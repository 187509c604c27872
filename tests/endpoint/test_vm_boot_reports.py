"""A LocalCloud VM booted with the real rendered user data reports to a real VM endpoint:
first heartbeat and boot log at start, periodic heartbeats, pilot log and shutdown message at the
end, then it powers off."""

import base64
import re

import pytest
from waiting import wait_until as wait_for

from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext, get_profile, pack_user_data, render_user_data
from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority

CE = "CLOUD.LocalCloud.org"
# A stand-in for DIRAC's pilot wrapper: shows what it was given, optionally outlives one
# heartbeat period, and exits with the code the test asks for.
WRAPPER = """#!/bin/bash
echo "stub pilot as $(id -un): PILOT_UUID=$PILOT_UUID DIRAC_PILOT_STAMP=$DIRAC_PILOT_STAMP"
[ -n "${STUB_SECONDS:-}" ] && sleep "$STUB_SECONDS"
exit "${STUB_EXIT:-0}"
"""
# The shipped template with a profile that needs no CVMFS (LocalCloud has none) and never
# schedules a host power-off.
PROFILE_CS = {"LocalTest": {"CVMFSRepositories": "", "Packages": "", "HeartbeatSeconds": "10", "HardPoweroff": "no"}}


def let_vms_reach(local_cloud, url):
    """The sandbox lets VMs connect only to listed host addresses: add the endpoint's."""
    address = url.split("://", 1)[1].rstrip("/")
    booter = local_cloud.booter
    reachable = getattr(booter, "reachable", None)  # None: a sandbox sharing the host's network
    if reachable is not None and address not in reachable:
        booter.reachable = (*reachable, address)


def boot_vm(conn, server, authority, db, template="el9.cloud-config.j2", **env):
    vm_name = make_vm_name()
    ctx = PilotContext(
        pilot_reference=pilot_reference(CE, vm_name), pilot_stamp=make_stamp(), wrapper=WRAPPER,
        vm_name=vm_name, ce_name=CE, site=CE, vo="belle", max_lifetime=3600,
        endpoint_url=server.url, endpoint_token=authority.issue_for_vm(vm_name, 3600), extra_env=env,
    )
    profile_cs = {"LocalTest": {**PROFILE_CS["LocalTest"], "Template": template}}
    user_data = pack_user_data(render_user_data(ctx, get_profile("LocalTest", profile_cs)), 65535)
    assert db.recordVMs([{
        "vm_name": vm_name, "vm_id": "", "ce": CE, "site": CE, "vo": "belle", "profile": "LocalTest",
        "pilot_reference": ctx.pilot_reference, "stamp": ctx.pilot_stamp, "flavor": "m1.small",
        "cores": 1, "ram_mb": 2048, "created": None,
    }])["OK"]
    image = conn.image.find_image("EL9-x86_64")
    flavor = conn.compute.find_flavor("m1.small")
    network = conn.network.find_network("private")
    created = conn.compute.create_server(name=vm_name, image_id=image.id, flavor_id=flavor.id,
                                         networks=[{"uuid": network.id}],
                                         user_data=base64.b64encode(user_data).decode())
    return ctx, created


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_booted_vms_report_to_the_endpoint(local_cloud, live_endpoint):
    server, authority, db, app = live_endpoint
    conn = local_cloud.connect()
    let_vms_reach(local_cloud, server.url)
    good_ctx, good = boot_vm(conn, server, authority, db, STUB_SECONDS="12")
    bad_ctx, bad = boot_vm(conn, server, authority, db, STUB_EXIT="3")

    def stopped(vm):
        return conn.compute.get_server(vm.id).status == "SHUTOFF"

    wait_for(lambda: stopped(good) and stopped(bad), 120, "both VMs to power off")
    console = {vm.name: local_cloud.booter.sandbox(vm.id).console.read_text() for vm in (good, bad)}

    # The VM whose pilot succeeded: boot log, pilot log, >= 2 heartbeats, "200" shutdown message.
    record = db.getVMs(names=[good_ctx.vm_name])["Value"][0]
    assert record["shutdown_code"] == 200, console[good.name][-3000:]
    assert record["shutdown_message"] == "Intended work completed ok"
    beats = db.getHeartbeats(good_ctx.vm_name)["Value"]
    assert len(beats) >= 2, console[good.name][-3000:]
    assert re.match(r"^\d+\.\d+ \d+\.\d+ \d+\.\d+ ", beats[0][1])  # /proc/loadavg
    logs = db.getLogs(good_ctx.vm_name)["Value"]
    assert set(logs) == {"boot", "pilot"}
    assert (f"stub pilot as diracpilot: PILOT_UUID={good_ctx.pilot_reference} "
            f"DIRAC_PILOT_STAMP={good_ctx.pilot_stamp}").encode() in logs["pilot"]
    assert b"pilot wrapper ended with exit code 0" in logs["boot"]
    assert b"running the pilot as diracpilot" in logs["boot"]

    # The VM whose pilot failed says so with a 600 code (what fizzle detection reads).
    record = db.getVMs(names=[bad_ctx.vm_name])["Value"][0]
    assert record["shutdown_code"] == 600, console[bad.name][-3000:]
    assert "exit code 3" in record["shutdown_message"]
    assert b"pilot wrapper ended with exit code 3" in db.getLogs(bad_ctx.vm_name)["Value"]["boot"]

    # Nothing was refused, and the token never reached the console or the stored logs.
    assert set(app.counters) <= {204, 429}, app.counters
    for ctx, vm in ((good_ctx, good), (bad_ctx, bad)):
        assert ctx.endpoint_token not in console[vm.name]
        assert all(ctx.endpoint_token.encode() not in content for content in db.getLogs(ctx.vm_name)["Value"].values())


@pytest.mark.parametrize("template", ["el9.cloud-config.j2", "debian.cloud-config.j2"])
@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_vm_reports_through_the_agent_and_dirac_vm_logs_shows_it(local_cloud, vmdb, tmp_path, agent_tools, template):
    """The whole path as deployed: the VM's curl -> dirac-agent WorkloadManagement/VMEndpoint ->
    VMDB -> the administrator's dirac-vm-logs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    agent = agent_tools.endpoint_agent(tmp_path, vmdb.cfg, PollingTime=5)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "dirac.cfg").write_text(agent.cfg)
    proc, log = agent_tools.start_agent(tmp_path, agent.cfg, "-o", "MaxCycles=0")
    try:
        agent_tools.wait_serving(proc, log, agent.url)

        conn = local_cloud.connect()
        let_vms_reach(local_cloud, agent.url)
        ctx, vm = boot_vm(conn, agent, TokenAuthority.from_secret_file(agent.secret), vmdb.db, template=template)
        wait_for(lambda: conn.compute.get_server(vm.id).status == "SHUTOFF", 120, "the VM to power off")
        console = local_cloud.booter.sandbox(vm.id).console.read_text()
        record = vmdb.db.getVMs(names=[ctx.vm_name])["Value"][0]
        assert record["shutdown_code"] == 200, console[-3000:]
        assert record["last_heartbeat"] is not None

        env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
        env.update(DIRAC_ROOT_PATH=str(tmp_path), DIRACSYSCONFIG=str(tmp_path / "etc" / "dirac.cfg"))
        shown = subprocess.run([str(Path(sys.executable).parent / "dirac-vm-logs"), ctx.pilot_reference, "--no-console"],
                               env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert f"==== uploaded boot log of {ctx.vm_name}" in shown.stdout
        assert f"==== uploaded pilot log of {ctx.vm_name}" in shown.stdout
        assert f"stub pilot as diracpilot: PILOT_UUID={ctx.pilot_reference}" in shown.stdout
        assert "shutdown message: 200 Intended work completed ok" in shown.stdout
        assert ctx.endpoint_token not in log.read_text() + shown.stdout
    finally:
        agent_tools.stop(proc)
