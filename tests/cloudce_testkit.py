"""Our cloud CE as DIRAC makes it, for any test: ``MadeCEs`` (CEs of CEType Cloud from DIRAC's
ComputingElementFactory, shut down together), a pilot wrapper for submitJob, and for the tests of
a create whose answer is lost: the ``make_recording_ce`` fixture (import it into the test module),
``LOST_RESPONSE_OPTIONS`` and ``servers_named``. The CE tests' fixtures over them are in
tests/ce/ce_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest

WRAPPER_TEXT = "#!/bin/bash\necho 'pilot wrapper running'\n"
#: CE options under which a create whose answer LocalCloud holds back times out at once (1.5 s),
#: is looked up and tried once more, and every listing is fresh (a late VM is seen at once)
LOST_RESPONSE_OPTIONS = {"HTTPTimeout": "1.5", "MaxCreateAttempts": "2", "ListingCacheSeconds": "0"}


class MadeCEs:
    """CEs of CEType Cloud made by DIRAC's ComputingElementFactory, shut down together."""

    def __init__(self) -> None:
        self.made = []

    def make(self, ce_name: str, params: dict, retry_delay: float = 0.0):
        from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

        result = ComputingElementFactory().getCE(ceType="Cloud", ceName=ce_name, ceParametersDict=params)
        assert result["OK"], result.get("Message")
        ce = result["Value"]
        ce.retryDelay = retry_delay
        self.made.append(ce)
        return ce

    def shutdown(self) -> None:
        for ce in self.made:
            ce.shutdown()


def write_pilot_wrapper(directory: Path) -> str:
    """The path of a pilot wrapper script (as the SiteDirector writes one) in `directory`."""
    path = Path(directory) / "pilot-wrapper.sh"
    path.write_text(WRAPPER_TEXT)
    return str(path)


def servers_named(cloud, name: str) -> list:
    """LocalCloud's servers called `name`, leaving out the deleted and those being deleted."""
    return [s for s in cloud.compute.servers.values()
            if s.name == name and s.status != "DELETED" and s.task_state != "deleting"]


@pytest.fixture
def make_recording_ce(vmdb, monkeypatch):
    """make_recording_ce(ce_name, params) -> our CE (``MadeCEs``) whose VMStateClient records into
    this test's VMDB in this process; shut down after the test."""
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    made = MadeCEs()

    def make(ce_name: str, params: dict):
        monkeypatch.setattr(client_module, "_db", vmdb.db)  # at the call: after the fixtures resetting it
        return made.make(ce_name, params)

    yield make
    made.shutdown()
