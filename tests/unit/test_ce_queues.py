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
