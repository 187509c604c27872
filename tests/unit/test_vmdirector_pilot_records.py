"""How the VMDirector reads pilot records (PilotAgentsDB and PilotManager answer alike)."""

from datetime import datetime, timezone

import pytest
from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.DErrno import EWMSNOPILOT

from JenniferDIRAC.WorkloadManagementSystem.Director.pilotrecords import PilotRecords
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle

CE = "cloud.example.org"
REF = f"cloud://{CE}/jdirac-{'a' * 32}"
LOST = f"cloud://{CE}/jdirac-{'b' * 32}"


class Store:
    """PilotAgentsDB's answers for two pilots (the edge of this unit test)."""

    def __init__(self, select=None, info=None):
        self.select = select or S_OK([LOST])
        self.info = info
        self.asked = None

    def selectPilots(self, cond):
        assert cond["DestinationSite"] == CE and "Running" in cond["Status"] and "Done" not in cond["Status"]
        return self.select

    def getPilotInfo(self, refs):
        self.asked = refs
        if self.info is not None:
            return self.info
        when = datetime(2026, 6, 1, 12, 0)
        return S_OK(
            {
                REF: {"Status": "Running", "LastUpdateTime": when, "SubmissionTime": when, "Jobs": [7, 12]},
                LOST: {"Status": "Submitted", "LastUpdateTime": when, "SubmissionTime": when},
            }
        )


def records(store, refs):
    return PilotRecords(store).records(CE, refs)


def test_records_of_listed_vms_and_transient_pilots():
    store = Store()
    got = records(store, {REF})
    assert store.asked == sorted({REF, LOST})
    assert got[REF].job_id == 12 and got[REF].ran_job
    assert got[LOST].job_id == 0 and got[LOST].status == "Submitted"
    assert got[REF].last_update == datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_no_pilot_at_all_is_an_empty_answer():
    assert records(Store(select=S_OK([]), info=S_ERROR(EWMSNOPILOT, "No pilots found")), {REF}) == {}
    assert records(Store(select=S_OK([])), set()) == {}


@pytest.mark.parametrize(
    "store",
    [Store(select=S_ERROR("db down")), Store(info=S_ERROR("connection lost"))],
    ids=["select", "info"],
)
def test_a_failed_read_skips_the_ce(store):
    with pytest.raises(CENotServedThisCycle, match="db down|connection lost"):
        records(store, {REF})
