"""Where the VMDirector and the admin commands read pilot records (Client/PilotStore.py): one
choice, PilotAgentsDB where it is configured on this host, the PilotManager service otherwise."""

from __future__ import annotations

import pytest
from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.DErrno import EWMSNOPILOT
from diraccfg import CFG

from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import pilot_info, pilot_store

REF = "cloud://cloud.store.test/jdirac-" + "c" * 32


@pytest.fixture
def local_cs():
    """gConfig's local configuration, given back as it was after the test."""
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData

    saved = gConfigurationData.localCFG.clone()
    yield gConfig
    gConfigurationData.localCFG = saved
    gConfigurationData.sync()


class Answers:
    """A store answering getPilotInfo with `answer` (the edge of this unit test)."""

    def __init__(self, answer):
        self.answer = answer

    def getPilotInfo(self, references):
        return self.answer


def test_pilots_unknown_to_the_store_are_an_empty_answer():
    assert pilot_info(
        Answers(S_ERROR(EWMSNOPILOT, f"No pilots found for PilotJobReference(s): {REF}")), [REF]
    ) == S_OK({})
    failed = pilot_info(Answers(S_ERROR("connection lost")), [REF])
    assert not failed["OK"] and failed["Message"] == "connection lost"
    assert pilot_info(Answers(S_OK({REF: {"Status": "Running"}})), [REF])["Value"] == {
        REF: {"Status": "Running"}
    }


def test_without_pilotagentsdb_on_this_host_the_pilotmanager_service_is_used(local_cs):
    from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters
    from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

    assert not getDBParameters("WorkloadManagement/PilotAgentsDB")["OK"]
    chosen = pilot_store()
    assert isinstance(chosen.store, PilotManagerClient)
    assert chosen.name == "the WorkloadManagement/PilotManager service"


def test_pilotagentsdb_configured_on_this_host_is_read_directly(local_cs, vmdb, pilotdb, mariadb):
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    local_cs.loadCFG(
        CFG().loadFromBuffer(
            "Systems\n{\n  WorkloadManagement\n  {\n    Databases\n    {\n      PilotAgentsDB\n      {\n"
            f"        DBName = {pilotdb}\n      }}\n    }}\n  }}\n}}\n"
        )
    )
    mariadb.execute(
        "INSERT INTO PilotAgents (PilotJobReference, VO, GridType, Status, PilotStamp, SubmissionTime) "
        f"VALUES ('{REF}', 'belle', 'Cloud', 'Running', '{'d' * 32}', UTC_TIMESTAMP())",
        database=pilotdb,
    )
    chosen = pilot_store()
    assert isinstance(chosen.store, PilotAgentsDB) and chosen.name == "WorkloadManagement/PilotAgentsDB"
    assert pilot_info(chosen.store, [REF])["Value"][REF]["Status"] == "Running"
    assert pilot_info(chosen.store, [REF.replace("c" * 32, "e" * 32)]) == S_OK({})  # DIRAC's EWMSNOPILOT
