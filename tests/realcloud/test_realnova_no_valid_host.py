"""Real Nova's scheduler refuses a server ("No valid host was found"): the CE and the VMDirector
treat it as the cloud being full (FailureKind capacity), as they do on LocalCloud
(tests/ce/test_ce_flavor_fallback.py): the next cycle falls back to the next flavor, and no
backoff starts.

The refusal is Nova's own: a public flavor whose root disk (10^6 GB) is larger than the fake
driver's hypervisor (600000 GB of DISK_GB in placement), so placement has no allocation
candidate and the conductor puts the server in ERROR with the scheduler's NoValidHost fault
after the API accepted it (202). Disk is not a Nova quota: the refusal is the scheduler's, not
the quota's.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "ce"))
sys.path.insert(0, str(TESTS / "realcloud"))
from cloudconfig_testkit import pilot_environment  # noqa: E402
from openstack_testkit import ClientCounter, wait_until  # noqa: E402
from targets import RealNovaTarget  # noqa: E402

from JenniferDIRAC.Resources.Cloud import placement  # noqa: E402
from JenniferDIRAC.Resources.Cloud.backends import make_backend  # noqa: E402
from JenniferDIRAC.Resources.Cloud.errors import FailureKind  # noqa: E402
from JenniferDIRAC.Resources.Cloud.model import VMState  # noqa: E402

NO_HOST_DISK_GB = 1_000_000  # nova.virt.fake.FakeDriver.local_gb is 600000


@pytest.fixture
def no_host_flavor(real_openstack):
    """A flavor no compute host of the real cloud can take; deleted afterwards."""
    real_openstack.reset()
    name = f"jdirac.nohost-{uuid.uuid4().hex[:6]}"
    body = real_openstack.nova("POST", "/flavors", {"flavor": {
        "name": name, "ram": 512, "vcpus": 1, "disk": NO_HOST_DISK_GB, "os-flavor-access:is_public": True}})
    flavor_id = body["flavor"]["id"]
    yield name, flavor_id
    real_openstack.reset()
    real_openstack.nova("DELETE", f"/flavors/{flavor_id}", expect=(202, 204, 404))


@pytest.fixture
def fresh_capacity_memory(monkeypatch):
    """The process-wide "no capacity" memory of this test only."""
    monkeypatch.setattr(placement, "MEMORY", placement.CapacityMemory())


@pytest.fixture
def openstack_target(real_openstack, fresh_capacity_memory):
    """Real Keystone + Nova, for tests/ce's make_target_ce (through tests/realcloud/conftest.py)."""
    return RealNovaTarget(real_openstack, ClientCounter(real_openstack.service_roots))


def wait_scheduled(real, server_id: str) -> dict:
    """The server as Nova's listing shows it once Nova has decided: ACTIVE or ERROR, no task left.

    The listing, not ``GET /servers/<id>``: a server the scheduler refused is ERROR in cell0
    while its build request still exists for a moment (seconds under load), and Nova's listing
    shows the build request's copy (BUILD) until then; the CE only ever sees the listing."""

    def decided():
        listed = {s.id: s for s in real.servers()}.get(server_id)
        if listed and listed.status in ("ACTIVE", "ERROR") and not listed.task_state:
            return listed.raw
        return None

    return wait_until(decided, 120, f"server {server_id} scheduled, as listed")


def landed(real) -> dict:
    """{VM name: (flavor name, status, cores the pilot is told)} of the demo project's servers."""
    return {
        s.name: (s.raw["flavor"]["original_name"], s.status,
                 pilot_environment(s.user_data_text()).get("DIRAC_NUMBER_OF_PROCESSORS"))
        for s in real.live_servers()
    }


def test_no_valid_host_is_capacity_and_the_next_cycle_falls_back(
        make_target_ce, wrapper, real_openstack, no_host_flavor):
    name, _ = no_host_flavor
    ce = make_target_ce(Instance_Flavor=f"name:{name}, name:m1.small", CapacityCacheSeconds=600,
                          ListingCacheSeconds=0)
    first = ce.submitJob(wrapper, "", 1)
    assert first["OK"], first.get("Message")  # Nova accepted it (202); the scheduler decides later
    (server,) = real_openstack.live_servers()
    decided = wait_scheduled(real_openstack, server.id)
    assert decided["status"] == "ERROR", decided
    fault = decided["fault"]
    assert fault["code"] == 500 and "No valid host was found" in fault["message"], decided

    # what the backend reads from real Nova's listing, as the demo user (no admin view)
    backend = make_backend(ce.cloudConfig)
    try:
        (vm,) = backend.list_vms(ce.cloudConfig.owner())
    finally:
        backend.close()
    assert (vm.name, vm.state, vm.fault_kind) == (server.name, VMState.ERROR, FailureKind.CAPACITY), vm
    assert not vm.fault_kind.counts_towards_backoff

    # the next cycle: the preferred flavor is remembered as full, m1.small is counted and used
    status = ce.available()
    assert status["OK"], status.get("Message")
    limited_by = status["CEInfoDict"]["CloudSlotsLimitedBy"]
    assert limited_by not in ("backoff", "no capacity for any flavor/zone"), status
    # counted with m1.small (1 vCPU, 2 GB): Nova's default 10 instances less the ERROR one, which
    # Nova counts (the backoff side is the VMDirector's: test_vmdirector_ends_a_no_valid_host_vm...)
    assert status["Value"] == 9, status
    second = ce.submitJob(wrapper, "", 2)
    assert second["OK"], second.get("Message")
    new = {n: v for n, v in landed(real_openstack).items() if n != server.name}
    assert len(new) == 2, landed(real_openstack)
    for server_id in [s.id for s in real_openstack.live_servers() if s.name in new]:
        assert wait_scheduled(real_openstack, server_id)["status"] == "ACTIVE"
    # m1.small has 1 vCPU (nova.tests.functional's default flavors): the pilot is told so
    assert sorted((v[0], v[2]) for v in new.values()) == [("m1.small", "1")] * 2, new
    assert landed(real_openstack)[server.name][:2] == (name, "ERROR")


def test_no_host_for_any_flavor_leaves_no_slots(
        make_target_ce, wrapper, real_openstack, no_host_flavor):
    name, _ = no_host_flavor
    ce = make_target_ce(Instance_Flavor=f"name:{name}", ListingCacheSeconds=0)
    assert ce.available()["Value"] == 10  # Nova's default quota of 10 instances
    assert ce.submitJob(wrapper, "", 1)["OK"]
    (server,) = real_openstack.live_servers()
    assert wait_scheduled(real_openstack, server.id)["status"] == "ERROR"

    status = ce.available()
    assert status["OK"] and status["Value"] == 0, status
    assert status["CEInfoDict"]["CloudSlotsLimitedBy"] == "no capacity for any flavor/zone", status
    refused = ce.submitJob(wrapper, "", 1)
    assert not refused["OK"] and "no capacity" in refused["Message"], refused
    assert [s.id for s in real_openstack.live_servers()] == [server.id]  # no other server was created


@pytest.fixture
def director_world(real_openstack, mariadb, vmdb, tmp_path):
    """tests/realcloud/test_vmdirector_realnova.py's world: VMDB, PilotAgentsDB, the agent's cfg."""
    from test_vmdirector_realnova import RealNovaWorld

    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    client_module._db = None
    world = RealNovaWorld(real_openstack, mariadb, vmdb, tmp_path)
    yield world
    world.close()
    client_module._db = None


def test_vmdirector_ends_a_no_valid_host_vm_without_backoff(director_world, real_openstack, no_host_flavor):
    """The VMDirector deletes the ERROR VM and aborts its pilot with Nova's fault, and starts no
    backoff (one failure that counts would start it: the CE would then submit nothing)."""
    import datetime as dt

    from test_vmdirector_cycle import CE, INSTALLATION, SITE, VO, ce_line

    from JenniferDIRAC.Resources.Cloud.model import OwnerTags
    from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference

    world = director_world
    _, flavor_id = no_host_flavor
    name = make_vm_name()
    owner = OwnerTags(installation=INSTALLATION, ce=CE, vo=VO, site=SITE)
    server_id = real_openstack.create_server(name, owner.to_metadata(), flavorRef=flavor_id)
    decided = wait_scheduled(real_openstack, server_id)
    assert decided["status"] == "ERROR" and "No valid host was found" in decided["fault"]["message"], decided
    created = dt.datetime.fromisoformat(decided["created"].replace("Z", "+00:00"))
    assert world.vmdb.db.recordVMs([{
        "vm_name": name, "vm_id": server_id, "ce": CE, "site": SITE, "vo": VO, "profile": "",
        "pilot_reference": pilot_reference(CE, name), "stamp": uuid.uuid4().hex, "flavor": "nohost",
        "cores": 1, "ram_mb": 512, "created": created}])["OK"]
    world.names["nohost"] = name
    world.add_pilot(name, "Submitted", 5, submitted_age=5)

    out = world.run_agent()
    assert name not in world.servers(), out[-3000:]
    assert "1 deleted" in ce_line(out)
    status, reason = world.pilot("nohost")
    assert status == "Aborted" and "No valid host was found" in reason, (status, reason)
    assert world.record("nohost")["deleted"] is not None
    backoff = world.vmdb.db.getBackoff(CE, "")["Value"]
    assert not (backoff and backoff["active"]), backoff
