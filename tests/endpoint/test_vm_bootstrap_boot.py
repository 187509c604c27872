"""A LocalCloud VM booted with bootstrap user data fetches its pilot wrapper once from a real VM
endpoint; its payload (the stub pilot, as the pilot user) then looks everywhere this VM offers
user data and tries every token it finds: none works. A VM whose fetch fails powers off without
running a pilot, and one VMDirector cycle (dirac-agent) aborts its pilot and backs its queue off."""

import base64
import re

import pytest
import requests
from waiting import wait_until as wait_for

from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext, get_profile, pack_user_data, render_user_data
from JenniferDIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement

CE = "CLOUD.LocalCloud.org"
PROFILE_CS = {"LocalTest": {"CVMFSRepositories": "", "Packages": "", "HeartbeatSeconds": "10", "HardPoweroff": "no"}}
#: Every place a LocalCloud VM keeps user data or metadata, and what the boot script leaves.
LOOKED_AT = (
    "/var/lib/cloud/instance/user-data.txt /var/lib/cloud/instance/cloud-config.txt "
    "/var/lib/cloud/instance/meta_data.json /var/lib/cloud/instance/scripts/runcmd "
    "/var/lib/cloud/instances/*/user-data.txt /run/cloud-init/instance-data.json "
    "/run/cloud-init/instance-data-sensitive.json /etc/jdirac/vm.env /etc/jdirac/endpoint.header "
    "/var/lib/jdirac/pilot-wrapper.sh /var/lib/jdirac/bootstrap.out /var/lib/jdirac/jdirac-boot"
)
# The payload: as the pilot user, read what it can and try each token found on the endpoint.
PAYLOAD = r"""#!/bin/bash
echo "payload as $(id -un)"
tokens=""
for f in {looked_at}; do
    [ -e "$f" ] || {{ echo "ABSENT $f"; continue; }}
    if found=$(grep -aoE 'jd[bv]1\.[A-Za-z0-9_-]+\.[0-9]+\.[A-Za-z0-9_-]+' "$f" 2>/dev/null; true) && [ -r "$f" ]; then
        echo "READABLE $f"
        tokens="$tokens $found"
    else
        echo "UNREADABLE $f"
    fi
done
for t in $tokens; do
    vm=$(echo "$t" | cut -d. -f2)
    for p in bootstrap heartbeat; do
        m=GET; [ $p = heartbeat ] && m=POST
        code=$(curl -s -o /dev/null -w '%{{http_code}}' -X $m -H "Authorization: Bearer $t" "{url}/vm/v1/$vm/$p")
        echo "TRIED ${{t:0:4}} $p $code"
    done
done
echo "payload done"
"""


def decoded_files(user_data):
    import gzip
    import yaml

    for item in yaml.safe_load(user_data)["write_files"]:
        data = base64.b64decode(item["content"])
        yield gzip.decompress(data) if item.get("encoding") == "gz+b64" else data


def boot_vm(local_cloud, server, authority, db, store_bootstrap=True, ce=CE, owner=None):
    """As the CE's submitJob does with an endpoint and VMDB: record, seal, render, create."""
    vm_name = make_vm_name()
    wrapper = PAYLOAD.format(looked_at=LOOKED_AT, url=server.url)
    report = authority.issue_for_vm(vm_name, 3600)
    sealed, bootstrap = CloudComputingElement._sealBootstrap(authority, vm_name, report, wrapper)
    ctx = PilotContext(
        pilot_reference=pilot_reference(ce, vm_name), pilot_stamp=make_stamp(), wrapper=wrapper,
        vm_name=vm_name, ce_name=ce, site=ce, vo="belle", max_lifetime=3600,
        endpoint_url=server.url, endpoint_token=bootstrap, bootstrap=True,
    )
    user_data = pack_user_data(render_user_data(ctx, get_profile("LocalTest", PROFILE_CS)), 16384, allow_gzip=False)
    assert db.recordVMs([{
        "vm_name": vm_name, "vm_id": "", "ce": ce, "site": ce, "vo": "belle", "profile": "LocalTest",
        "pilot_reference": ctx.pilot_reference, "stamp": ctx.pilot_stamp, "flavor": "m1.small",
        "cores": 1, "ram_mb": 2048, "created": None,
    }])["OK"]
    if store_bootstrap:
        assert db.storeBootstrap(vm_name, sealed)["OK"]
    conn = local_cloud.connect()
    created = conn.compute.create_server(
        name=vm_name, image_id=conn.image.find_image("EL9-x86_64").id,
        flavor_id=conn.compute.find_flavor("m1.small").id,
        networks=[{"uuid": conn.network.find_network("private").id}],
        user_data=base64.b64encode(user_data).decode(), metadata=owner.to_metadata() if owner else {})
    return ctx, report, user_data, created


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_the_payload_finds_no_working_credential(local_cloud, live_endpoint):
    server, authority, db, app = live_endpoint
    booter = local_cloud.booter
    address = server.url.split("://", 1)[1]
    if getattr(booter, "reachable", None) is not None and address not in booter.reachable:
        booter.reachable = (*booter.reachable, address)
    conn = local_cloud.connect()
    ctx, report, user_data, vm = boot_vm(local_cloud, server, authority, db)
    failing_ctx, _, _, failing = boot_vm(local_cloud, server, authority, db, store_bootstrap=False)

    wait_for(lambda: all(conn.compute.get_server(v.id).status == "SHUTOFF" for v in (vm, failing)), 180,
             "both VMs to power off")
    console = booter.sandbox(vm.id).console.read_text()

    # User data: no wrapper, no report token, only the one-time token; a few KiB, not gzipped.
    assert not user_data.startswith(b"\x1f\x8b")
    readable = user_data + b"".join(decoded_files(user_data))
    assert ctx.endpoint_token.encode() in readable and report.encode() not in readable
    assert b"payload done" not in readable
    print(f"\nuser data of a bootstrap pilot VM: {len(user_data)} bytes (v0.1.0: about 16 KB gzipped)")

    record = db.getVMs(names=[ctx.vm_name])["Value"][0]
    assert record["shutdown_code"] == 200, console[-3000:]
    pilot_log = db.getLogs(ctx.vm_name)["Value"]["pilot"].decode()
    assert "payload as diracpilot" in pilot_log and "payload done" in pilot_log, pilot_log
    assert re.search(r"^(ABSENT|UNREADABLE) /var/lib/cloud/instance/user-data.txt$", pilot_log, re.M), pilot_log
    assert re.search(r"^(ABSENT|UNREADABLE) /etc/jdirac/endpoint.header$", pilot_log, re.M), pilot_log
    assert re.search(r"^ABSENT /var/lib/jdirac/bootstrap.out$", pilot_log, re.M), pilot_log
    # Whatever token the payload found and tried, nothing accepted it.
    tried = re.findall(r"^TRIED (\S+) (\S+) (\d+)$", pilot_log, re.M)
    assert all(code[0] == "4" for _, _, code in tried), tried
    assert "metadata service" in console  # the boot script tried to block it (LocalCloud has no nft/iptables)

    # The bootstrap token from user data, replayed now: refused and recorded.
    replay = requests.get(f"{server.url}/vm/v1/{ctx.vm_name}/bootstrap",
                          headers={"Authorization": f"Bearer {ctx.endpoint_token}"}, timeout=30)
    assert replay.status_code == 410
    assert db.getBootstrapIncidents()["Value"].get(ctx.vm_name, 0) >= 1

    # The VM whose fetch failed powered off before any pilot ran, saying so with its bootstrap token.
    failed = db.getVMs(names=[failing_ctx.vm_name])["Value"][0]
    assert failed["shutdown_code"] == 510 and failed["last_heartbeat"] is None
    assert "could not fetch the bootstrap" in booter.sandbox(failing.id).console.read_text()
    assert db.getLogs(failing_ctx.vm_name)["Value"] == {}


def _director_world():
    """tests/integration/test_vmdirector_cycle.py's World: a VMDirector configuration on this
    LocalCloud and MariaDB, run with dirac-agent."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "integration" / "test_vmdirector_cycle.py"
    spec = importlib.util.spec_from_file_location("vmdirector_cycle_world", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_a_refused_fetch_ends_as_an_aborted_pilot_and_a_backoff(local_cloud, live_endpoint, mariadb, vmdb, tmp_path):
    from JenniferDIRAC.Resources.Cloud.model import OwnerTags
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    server, authority, db, app = live_endpoint
    booter = local_cloud.booter
    address = server.url.split("://", 1)[1]
    if getattr(booter, "reachable", None) is not None and address not in booter.reachable:
        booter.reachable = (*booter.reachable, address)
    director = _director_world()
    client_module._db = None  # VMStateClient keeps one VMDB per process
    world = director.World(local_cloud, mariadb, vmdb, tmp_path)
    try:
        owner = OwnerTags(installation=director.INSTALLATION, ce=director.CE, vo=director.VO, site=director.SITE,
                          profile="LocalTest")
        # no bootstrap stored: the endpoint refuses the fetch (404)
        ctx, _, _, vm = boot_vm(local_cloud, server, authority, db, store_bootstrap=False, ce=director.CE,
                                owner=owner)
        world.add_pilot(ctx.vm_name, "Submitted", update_age=30, submitted_age=30, ce=director.CE)
        conn = local_cloud.connect()
        wait_for(lambda: conn.compute.get_server(vm.id).status == "SHUTOFF", 180, "the VM to power off")
        assert db.getVMs(names=[ctx.vm_name])["Value"][0]["shutdown_code"] == 510

        out = world.run_agent()

        status, reason = world.pilot(ctx.vm_name)
        assert status == "Aborted" and "bootstrap fetch failed" in reason, director.ce_line(out)
        assert ctx.vm_name not in world.servers()
        backoff = db.getBackoff(director.CE, "LocalTest")["Value"]
        assert backoff and "could not fetch its bootstrap" in backoff["reason"], backoff
    finally:
        world.close()
        client_module._db = None
