"""One version discovery per cloud project in a VMDirector cycle. DELETEs need none (the same call
in every microversion, sent without openstacksdk's negotiation), even when the project's CEs
send their first ones at once; what negotiates (the accounting's flavor read) asks the compute
endpoint's version document (``GET /v2.1``) once for all the project's CEs: they share it
(Director/cloudaccess.py)."""

from test_vmdirector_cycle import CE, OTHER_CE, ce_line, world  # noqa: F401 - the fixture

THIRD_CE = "cloud3.director.test"


def test_ces_of_one_project_deleting_in_one_cycle_discover_the_version_once(world, local_cloud):
    ces = (CE, OTHER_CE, THIRD_CE)
    for ce in ces:
        world.add_vm(f"healthy-{ce}", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60, ce=ce)
        world.add_vm(f"stopped-{ce}", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600, ce=ce)
    local_cloud.counters.reset()

    out = world.run_agent(extra_ces=[(ce, world.ce_parameters(ce)) for ce in ces[1:]])

    for ce in ces:
        assert "2 VMs, 1 deleted" in ce_line(out, ce), out
    assert local_cloud.counters.get("compute", "DELETE", "/v2.1/servers/<server_id>") == 3, local_cloud.counters
    assert local_cloud.counters.get("compute", "GET", "/v2.1") == 1, local_cloud.counters  # 3 before
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 1, local_cloud.counters
    assert {world.names[f"healthy-{ce}"] for ce in ces} == set(world.servers())
