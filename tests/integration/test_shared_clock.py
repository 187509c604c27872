"""One clock for the cloud, the VMDirector's policy and the CE's backoff checks.

LocalCloud's clock (`local_cloud.clock`) dates the VMs it creates; the in-process VMDirector and
the cloud CE are given the same clock (their `clock` attribute, real time by default), so one
`advance(seconds)` ages every VM past its thresholds and ends a backoff without a sleep. The
cycles are real ones: the agent object of `dirac-agent WorkloadManagement/VMDirector`, its CS
loaded in this process, LocalCloud over HTTP, PilotAgentsDB and VMDB on MariaDB.
"""

from __future__ import annotations

import pytest
from diraccfg import CFG
from test_vmdirector_cycle import CE, World, world  # noqa: F401 - world is a fixture

from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module


@pytest.fixture
def director(world, local_cloud, vmdb, tmp_path, monkeypatch):
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData

    from JenniferDIRAC.WorkloadManagementSystem.Agent.VMDirector import VMDirector

    saved = gConfigurationData.localCFG.clone()
    work = tmp_path / "work"
    work.mkdir()
    cfg = world.cfg().replace("DIRACAccounting = False", f"DIRACAccounting = False\n        WorkDirectory = {work}")
    gConfig.loadCFG(CFG().loadFromBuffer(cfg))
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    agent = VMDirector("WorkloadManagement/VMDirector", "WorkloadManagement/VMDirector")
    agent.clock = local_cloud.clock.utcnow
    assert agent.initialize()["OK"]
    yield agent
    gConfigurationData.localCFG = saved
    gConfigurationData.sync()


def cycle(agent) -> None:
    result = agent.execute()
    assert result["OK"], result.get("Message")


def cloud_ce(world, clock=None):
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    params = world.ce_parameters()
    params.pop("CEType")
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE, ceParametersDict=params)
    assert result["OK"], result.get("Message")
    if clock is not None:
        result["Value"].clock = clock
    return result["Value"]


def test_one_advance_ages_vms_past_their_thresholds_and_ends_the_backoff(world, local_cloud, director):
    world.add_vm("running", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60)
    world.add_vm("building", "BUILD", 60, pilot="Submitted")  # stuck: LocalCloud never finishes it

    cycle(director)
    assert set(world.servers()) == {world.names["running"], world.names["building"]}

    # BootTimeout is 600 s: the stuck build is now 660 s old, the running VM 1,200 s
    local_cloud.clock.advance(600)
    cycle(director)
    assert set(world.servers()) == {world.names["running"]}
    assert world.pilot("building")[0] == "Aborted" and world.pilot("running")[0] == "Running"

    # the VM that never booted backs the CE off for BackoffSeconds (1800) of the same clock
    backoff = world.vmdb.db.getBackoff(CE, "")["Value"]
    assert backoff and "never booted" in backoff["reason"]
    shared, real = cloud_ce(world, local_cloud.clock.utcnow), cloud_ce(world)
    try:
        assert shared.available()["Value"] == 0
        local_cloud.clock.advance(1801)
        assert shared.available()["Value"] > 0  # the backoff is over on the shared clock ...
        assert real.available()["Value"] == 0  # ... and not yet in real time
    finally:
        shared.shutdown()
        real.shutdown()

    # MaxLifetime is a day
    local_cloud.clock.advance(86400)
    cycle(director)
    assert world.servers() == {}
    status, reason = world.pilot("running")
    assert status == "Deleted" and "maximum lifetime of 86400" in reason
