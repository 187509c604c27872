"""A create whose answer is lost while the CE's lookup of the VM fails too, over real HTTP:
LocalCloud holds the POST past the CE's timeout and creates the VM after it (lost_response),
the lookup by name that follows gets a 503, the last one finds nothing yet. The VM is recorded
"create uncertain" (never deleted) and its pilot returned to DIRAC; the VM lands; a real
`dirac-agent WorkloadManagement/VMDirector` cycle adopts it into its record (its cloud id and
state) and the pilot has its VM: nothing deleted, nothing aborted, even with OrphanGrace."""

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
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE
from test_vmdirector_cycle import CE, World, world  # noqa: F401 - world is a fixture

LOOKUP = ("compute", "GET", "/v2.1/servers/detail")


@pytest.fixture
def ce(world, make_recording_ce):
    return make_recording_ce(CE, {**world.ce_parameters(), **LOST_RESPONSE_OPTIONS})


def test_a_lost_create_whose_lookup_fails_is_adopted_not_deleted(world, local_cloud, ce, vmdb, tmp_path):
    wrapper = write_pilot_wrapper(tmp_path)
    # the create lands 4 s after it was sent, after the CE's 1.5 s timeout and both its lookups
    local_cloud.faults.lose_response(delay=4.0, service="compute", method="POST", path="/v2.1/servers")
    local_cloud.faults.http_error(503, service="compute", method="GET", path="/v2.1/servers/detail", times=1)
    lookups = local_cloud.counters.get(*LOOKUP)

    result = ce.submitJob(wrapper, "", 1)

    assert result["OK"], result.get("Message")  # was S_ERROR: no pilot for a VM about to exist
    (ref,) = result["Value"]
    name = parse_reference(ref)[1]
    assert set(result["PilotStampDict"]) == {ref}
    assert local_cloud.faults.count("http_error") == 1 and local_cloud.counters.get(*LOOKUP) - lookups == 2
    assert local_cloud.counters.get("compute", "POST", "/v2.1/servers") == 1  # never created blind
    assert servers_named(local_cloud, name) == []  # not landed yet
    (record,) = vmdb.db.getVMs(names=[name])["Value"]
    assert record["deleted"] is None and record["delete_reason"] in ("", None)  # was: deleted
    assert record["cloud_state"] == CREATE_UNCERTAIN_STATE and record["vm_id"] == ""
    assert record["stamp"] == result["PilotStampDict"][ref]

    (server,) = wait_until(lambda: servers_named(local_cloud, name) or None, 30, "the late create",
                           interval=0.05)
    world.add_pilot(name, "Submitted", update_age=1, submitted_age=1)  # what the SiteDirector records

    out = world.run_agent()

    (after,) = vmdb.db.getVMs(names=[name])["Value"]
    assert after["vm_id"] == server.id and after["cloud_state"] != CREATE_UNCERTAIN_STATE  # adopted
    assert after["deleted"] is None and not after["accounted"]
    assert [s.id for s in servers_named(local_cloud, name)] == [server.id]  # neither orphan nor twin
    assert "orphan" not in out
    assert world.pilot(name)[0] == "Submitted"  # neither aborted nor lost
    wait_until(lambda: server.status == "ACTIVE", 30, "the VM running", interval=0.05)
    assert ce.getJobStatus([ref])["Value"] == {ref: "Running"}  # the pilot's VM is the one that landed


def test_a_rule_armed_by_a_lost_response_fails_the_request_after_it_once():
    from JenniferLocalCloud.faults import FaultInjector

    faults = FaultInjector()
    faults.lose_response(service="compute", method="POST", path="/v2.1/servers", times=None)
    faults.add("http_error", status=503, armed_by="lost_response", times=None,
               service="compute", method="GET", path="/v2.1/servers/detail")
    lookup = ("compute", "GET", "/v2.1/servers/detail")
    assert faults.before_request(*lookup) is None  # not armed before a lost create
    assert faults.before_request("compute", "POST", "/v2.1/servers").kind == "lost_response"
    assert faults.before_request(*lookup).status == 503
    assert faults.before_request(*lookup) is None  # once per lost create
    assert [e.kind for e in faults.events] == ["lost_response", "http_error"]
