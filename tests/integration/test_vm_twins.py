"""Twin VMs over real HTTP: LocalCloud holds a create past the CE's timeout and completes it
after the CE created again and listed for late twins ("create done, response lost"); a real
`dirac-agent WorkloadManagement/VMDirector` cycle removes the extra VM and keeps the one VMDB
recorded, the pilot and its VM record untouched; getJobStatus reports the kept VM."""

from __future__ import annotations

import pytest
from cloudce_testkit import (  # noqa: F401 - make_recording_ce is a fixture
    LOST_RESPONSE_OPTIONS,
    make_recording_ce,
    servers_named,
    write_pilot_wrapper,
)
from waiting import wait_until

from JenniferDIRAC.Resources.Cloud.references import parse_reference
from test_vmdirector_cycle import CE, World, world  # noqa: F401 - world is a fixture


def _poll(predicate, seconds=30.0):
    return wait_until(predicate, seconds, "the condition", interval=0.05)


@pytest.fixture
def ce(world, make_recording_ce):
    return make_recording_ce(CE, {**world.ce_parameters(), **LOST_RESPONSE_OPTIONS})


def test_a_late_twin_is_removed_by_the_next_director_cycle(world, local_cloud, ce, vmdb, tmp_path):
    wrapper = write_pilot_wrapper(tmp_path)
    # the first create lands 5 s after it was sent: after the CE's 1.5 s timeout, its lookup
    # by name, its second create and its listing for late twins
    local_cloud.faults.lose_response(delay=5.0, service="compute", method="POST", path="/v2.1/servers")
    result = ce.submitJob(wrapper, "", 1)
    assert result["OK"], result.get("Message")
    (ref,) = result["Value"]
    name = parse_reference(ref)[1]
    assert len(servers_named(local_cloud, name)) == 1  # the twin has not landed yet

    twins = _poll(lambda: servers if len(servers := servers_named(local_cloud, name)) == 2 else None)
    (record,) = vmdb.db.getVMs(names=[name])["Value"]
    kept = next(s for s in twins if s.id == record["vm_id"])
    late = next(s for s in twins if s.id != record["vm_id"])
    assert {k: v for k, v in late.metadata.items()} == kept.metadata  # same owner tags and stamp
    assert local_cloud.faults.count("lost_response") == 1
    # the late twin is stuck in BUILD: seen instead of the kept VM, it would hold the pilot
    # Submitted (and, past BootTimeout, abort it)
    late.status, late.stuck = "BUILD", True
    _poll(lambda: local_cloud.compute.servers[kept.id].status == "ACTIVE")
    world.add_pilot(name, "Running", update_age=10, submitted_age=20)
    assert ce.getJobStatus([ref])["Value"] == {ref: "Running"}

    out = world.run_agent()

    assert "twin" in out
    assert [s.id for s in servers_named(local_cloud, name)] == [kept.id]
    (after,) = vmdb.db.getVMs(names=[name])["Value"]
    assert after["deleted"] is None and after["vm_id"] == kept.id and not after["accounted"]
    assert after["delete_reason"] in ("", None)
    assert world.pilot(name)[0] == "Running"
    assert ce.getJobStatus([ref])["Value"] == {ref: "Running"}

    # the next cycle has nothing left to do for this pilot
    deletes = local_cloud.counters.get("compute", "DELETE", "/v2.1/servers/<server_id>")
    world.run_agent()
    assert local_cloud.counters.get("compute", "DELETE", "/v2.1/servers/<server_id>") == deletes
    assert [s.id for s in servers_named(local_cloud, name)] == [kept.id]
    assert world.pilot(name)[0] == "Running"
