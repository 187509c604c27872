"""Each queue's parameters (CEQueues): DIRAC's own getQueues / getQueuesResolved over a real CS,
one rule for the VMDirector and the admin commands."""

from __future__ import annotations

import pytest
from diraccfg import CFG

CE = "cloud.queues.test"
SITE = "CLOUD.Queues.test"

CS = f"""
Resources
{{
  Sites
  {{
    CLOUD
    {{
      {SITE}
      {{
        CEs
        {{
          {CE}
          {{
            CEType = Cloud
            CloudType = OPENSTACK
            Context_MaxLifetime = 7200
            BootTimeout = 900
            Queues
            {{
              long
              {{
                Context_MaxLifetime = 259200
                maxCPUTime = 4000
              }}
              short
              {{
                BootTimeout = 300
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""


@pytest.fixture
def cs():
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData

    saved = gConfigurationData.localCFG.clone()
    gConfig.loadCFG(CFG().loadFromBuffer(CS))
    yield
    gConfigurationData.localCFG = saved
    gConfigurationData.sync()


def test_each_queue_gets_its_options_over_the_ces(cs):
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues

    from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import ce_level_parameters, queue_parameters

    sites = getQueues(ceList=[CE])["Value"]
    queues = queue_parameters(sites)["Value"][CE]
    assert list(queues) == ["long", "short"]
    assert (queues["long"]["Context_MaxLifetime"], queues["long"]["BootTimeout"]) == ("259200", "900")
    assert (queues["short"]["Context_MaxLifetime"], queues["short"]["BootTimeout"]) == ("7200", "300")
    assert {q["Queue"] for q in queues.values()} == {"long", "short"}
    assert all(q["GridCE"] == CE and q["Site"] == SITE for q in queues.values())
    assert "Queues" in sites[SITE][CE]  # getQueues' answer is left as it was
    level = ce_level_parameters(SITE, CE, sites[SITE][CE])
    assert level["Context_MaxLifetime"] == "7200" and "Queue" not in level and "Queues" not in level


def test_the_admin_commands_use_the_same_rule(cs):
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues

    from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import queue_parameters
    from JenniferDIRAC.WorkloadManagementSystem.Admin.VMAdmin import ce_queues

    assert ce_queues(CE)["Value"] == queue_parameters(getQueues(ceList=[CE])["Value"])["Value"][CE]


def test_a_ce_s_parameters_hold_its_level_its_queues_and_its_first_queue(cs):
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues

    from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import (
        CEParameters,
        ce_level_parameters,
        parameters_by_ce,
    )

    sites = getQueues(ceList=[CE])["Value"]
    params = parameters_by_ce(sites)["Value"][CE]
    assert params.queues == queue_parameters_of(sites)
    assert params.with_first_queue == params.queues["long"]  # the first queue by name
    assert params.ce_level == ce_level_parameters(SITE, CE, sites[SITE][CE])
    assert "Queues" in sites[SITE][CE]  # getQueues' answer is left as it was
    assert CEParameters({"GridCE": CE}).with_first_queue == {"GridCE": CE}  # no queue: the CE level


def queue_parameters_of(sites):
    from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import queue_parameters

    return queue_parameters(sites)["Value"][CE]


def test_the_admin_commands_and_the_vmdirector_take_the_same_first_queue(cs):
    from JenniferDIRAC.WorkloadManagementSystem.Admin.VMAdmin import ce_parameters
    from JenniferDIRAC.WorkloadManagementSystem.Director.discovery import cloud_ces

    # Limited to this test's site: gConfig is per process, and earlier tests may have loaded
    # other cloud CEs into it.
    served = cloud_ces([SITE], [], ["Cloud"], [])["Value"]
    assert list(served) == [CE]
    assert ce_parameters(CE)["Value"] == served[CE].with_first_queue
    assert served[CE].with_first_queue["Queue"] == "long"


@pytest.mark.parametrize(
    "declared, served",
    [("", True), ("belle", True), ("t2k, belle", True), (["t2k", "belle"], True), ("t2k", False), (["t2k"], False)],
)
def test_a_ce_serves_the_vos_it_declares(declared, served):
    from JenniferDIRAC.WorkloadManagementSystem.Director.discovery import serves_vo

    assert serves_vo({"VO": declared}, ["belle"]) is served
    assert serves_vo({"Community": declared}, ["belle"]) is served


def test_the_vmdirector_serves_only_the_ces_of_its_vos(cs):
    from JenniferDIRAC.WorkloadManagementSystem.Director.discovery import cloud_ces

    assert list(cloud_ces([], [], ["Cloud"], ["belle"])["Value"]) == [CE]  # no VO option: every VO
    assert cloud_ces([], ["no.such.ce"], ["Cloud"], [])["Value"] == {}
