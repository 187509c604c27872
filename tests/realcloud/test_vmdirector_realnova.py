"""A real `dirac-agent WorkloadManagement/VMDirector` cycle against real Nova 34 + Keystone 30
and MariaDB, over stopped, errored, zombie, orphan, over-age and foreign VMs.

The world (pilot and VM records, the agent's configuration, reading back) is the one of
tests/integration/test_vmdirector_cycle.py; only the VMs are real Nova's. Real VMs cannot be
back-dated: the over-age VM is submitted for a queue with a MaxLifetime of seconds and the
orphan for one with a short OrphanGrace, everything else keeps the CE's day-long limits.
"""

from __future__ import annotations

import sys
import types
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_vmdirector_cycle import CE, INSTALLATION, SITE, VO, World, ce_line  # noqa: E402

from JenniferDIRAC.Resources.Cloud.model import OwnerTags  # noqa: E402
from JenniferDIRAC.Resources.Cloud.references import make_vm_name  # noqa: E402
from openstack_testkit import wait_until  # noqa: E402

LIFETIME = 20  # seconds: MaxLifetime of the "short" queue
QUEUES = {"default": {}, "short": {"MaxLifetime": LIFETIME}, "quick": {"OrphanGrace": 1}}


class RealNovaWorld(World):
    def __init__(self, real, mariadb, vmdb, tmp_path):
        demo = real.demo
        credentials = types.SimpleNamespace(username=demo["username"], password=demo["password"],
                                            project_name=demo["project_name"])
        super().__init__(types.SimpleNamespace(credentials=credentials), mariadb, vmdb, tmp_path)
        self.real = real

    def ce_parameters(self, ce=CE, auth_url=None):
        params = super().ce_parameters(ce, auth_url or self.real.keystone_url)
        params.update({"Instance_Image": self.real.image_id, "Instance_Networks": self.real.network_id,
                       "HTTPTimeout": "30"})
        return params

    def add_real_vm(self, role, state, installation=INSTALLATION, record=True, pilot=None, pilot_age=0,
                    queue=""):
        import datetime as dt

        name = make_vm_name()
        owner = OwnerTags(installation=installation, ce=CE, vo=VO, site=SITE, queue=queue)
        server_id = self.real.create_server(name, owner.to_metadata())
        if state == "SHUTOFF":
            self.real.stop(server_id)
        elif state == "ERROR":
            self.real.set_error(server_id)
        else:
            self.real.wait_status(server_id, "ACTIVE")
        self.names[role], self.ids[role] = name, server_id
        created = dt.datetime.fromisoformat(self.real.server(server_id)["created"].replace("Z", "+00:00"))
        if record:
            rec = {"vm_name": name, "vm_id": server_id, "ce": CE, "site": SITE, "vo": VO, "profile": "",
                   "pilot_reference": f"cloud://{CE}/{name}", "stamp": uuid.uuid4().hex, "flavor": "m1.small",
                   "cores": 1, "ram_mb": 2048, "created": created}
            assert self.vmdb.db.recordVMs([rec])["OK"]
            assert self.vmdb.db.setVMStates({name: {"state": "ACTIVE", "started": created}})["OK"]
        if pilot:
            self.add_pilot(name, pilot, pilot_age, submitted_age=pilot_age)
        return created

    def servers(self):
        return {s.name: s for s in self.real.live_servers()}


@pytest.fixture
def real_world(real_openstack, mariadb, vmdb, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    client_module._db = None
    real_openstack.reset()
    world = RealNovaWorld(real_openstack, mariadb, vmdb, tmp_path)
    yield world
    world.close()
    real_openstack.reset()
    client_module._db = None


def test_vmdirector_cycle_on_real_nova(real_world, real_openstack):
    import datetime as dt

    born = real_world.add_real_vm("over_age", "ACTIVE", pilot="Running", pilot_age=5, queue="short")
    real_world.add_real_vm("stopped", "SHUTOFF", pilot="Running", pilot_age=600)
    real_world.add_real_vm("errored", "ERROR", pilot="Submitted", pilot_age=5)
    real_world.add_real_vm("zombie", "ACTIVE", pilot="Done", pilot_age=1800)
    real_world.add_real_vm("orphan", "ACTIVE", record=False, queue="quick")
    real_world.add_real_vm("foreign", "SHUTOFF", installation="SomeoneElse", record=False)
    real_world.add_real_vm("healthy", "ACTIVE", pilot="Running", pilot_age=5)
    # the over-age VM passes its queue's MaxLifetime (its real age, as Nova reports it)
    wait_until(lambda: dt.datetime.now(dt.timezone.utc) - born > dt.timedelta(seconds=LIFETIME + 1),
               LIFETIME + 120, "over-age VM past MaxLifetime")

    out = real_world.run_agent(queues=QUEUES)
    servers = real_world.servers()
    left = {role for role, name in real_world.names.items() if name in servers}
    assert left == {"healthy", "orphan", "foreign"}, (left, out[-3000:])
    assert "4 deleted" in ce_line(out)
    assert real_world.pilot("stopped")[0] == "Done"
    assert real_world.pilot("over_age")[0] == "Deleted"
    assert real_world.pilot("zombie")[0] == "Done"
    assert real_world.pilot("errored")[0] == "Aborted"
    assert real_world.pilot("healthy")[0] == "Running"
    for role in ("stopped", "errored", "zombie", "over_age"):
        assert real_world.record(role)["deleted"] is not None, role

    # Second cycle: the orphan has been seen twice and is deleted; healthy and foreign stay.
    out = real_world.run_agent(queues=QUEUES)
    servers = real_world.servers()
    assert real_world.names["orphan"] not in servers
    assert real_world.names["healthy"] in servers and real_world.names["foreign"] in servers
