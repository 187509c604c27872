"""What the tests of pilot records on DIRAC's PilotAgentsDB share: gConfig's local configuration
given back after the test (``local_cs``), PilotAgentsDB configured on this host in it."""

from __future__ import annotations

import pytest
from diraccfg import CFG


@pytest.fixture
def local_cs():
    """gConfig's local configuration, given back as it was after the test."""
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData

    saved = gConfigurationData.localCFG.clone()
    yield gConfig
    gConfigurationData.localCFG = saved
    gConfigurationData.sync()


def configure_pilotagentsdb(cs, dbname: str) -> None:
    """PilotAgentsDB configured on this host in `cs` (local_cs), on database `dbname`."""
    cs.loadCFG(CFG().loadFromBuffer(
        "Systems\n{\n  WorkloadManagement\n  {\n    Databases\n    {\n      PilotAgentsDB\n      {\n"
        f"        DBName = {dbname}\n      }}\n    }}\n  }}\n}}\n"))
