"""The other end of an uncertain create: the VM never lands. Its record (CREATE_UNCERTAIN, no
cloud id) and its pilot (returned to the SiteDirector, Submitted) wait LostPilotGrace (120 s in
the world's VMDirector options); a real `dirac-agent WorkloadManagement/VMDirector` cycle then
aborts the pilot, closes the record and accounts it, and backs the queue off for BackoffSeconds
(a create the cloud took and never carried out is a create failure of the queue); one still within
the grace is left. An uncertain create that lands late is adopted and backs nothing off."""

from __future__ import annotations

import datetime as dt
import uuid

from test_vmdirector_cycle import CE, SITE, VO, World, world  # noqa: F401 - world is a fixture

from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE


def uncertain_create(world, age: int, name: str = "") -> str:
    """What the CE leaves for a create sent and never answered that no lookup found."""
    name = name or make_vm_name()
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    record = {"vm_name": name, "vm_id": "", "ce": CE, "site": SITE, "vo": VO, "profile": "",
              "pilot_reference": pilot_reference(CE, name), "stamp": uuid.uuid4().hex,
              "flavor": "m1.small", "cores": 1, "ram_mb": 2048, "created": created}
    assert world.vmdb.db.recordVMs([record])["OK"]
    assert world.vmdb.db.setVMStates({name: CREATE_UNCERTAIN_STATE}, created)["OK"]
    world.add_pilot(name, "Submitted", update_age=age, submitted_age=age)
    return name


def test_an_uncertain_create_that_never_lands_ends_its_pilot_after_lost_pilot_grace(world):
    old, recent = uncertain_create(world, 300), uncertain_create(world, 10)

    world.run_agent()

    status, reason = world.pilot(old)
    assert status == "Aborted" and "gone" in reason
    (record,) = world.vmdb.db.getVMs(names=[old])["Value"]
    assert record["deleted"] is not None and record["accounted"]
    assert "create the cloud did not answer" in record["delete_reason"]
    assert world.pilot(recent)[0] == "Submitted"  # may still land
    (record,) = world.vmdb.db.getVMs(names=[recent])["Value"]
    assert record["deleted"] is None and record["cloud_state"] == CREATE_UNCERTAIN_STATE

    backoff = world.vmdb.db.getBackoff(CE, "")["Value"]  # no row on the old code
    assert backoff is not None and backoff["active"] and backoff["failures"] == 1
    assert old in backoff["reason"] and recent not in backoff["reason"]
    left = (backoff["until"].replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)).total_seconds()
    assert 1800 - 180 < left <= 1800  # BackoffSeconds from the cycle (the agent's run is at most 180 s)


def test_an_uncertain_create_that_lands_late_is_adopted_and_backs_nothing_off(world):
    server = world.add_vm("late", "ACTIVE", 300, record=False)
    name = uncertain_create(world, 300, server.name)

    world.run_agent()

    (record,) = world.vmdb.db.getVMs(names=[name])["Value"]
    assert record["vm_id"] == server.id and record["deleted"] is None  # adopted
    assert world.pilot(name)[0] == "Submitted"
    assert world.vmdb.db.getBackoff(CE, "")["Value"] is None
