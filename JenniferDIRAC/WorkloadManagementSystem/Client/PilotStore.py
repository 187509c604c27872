"""Where pilot records are read and written: PilotAgentsDB directly where it is configured on
this host, the PilotManager service otherwise (the VMDirector and the admin commands alike).

Both answer the same calls the same way (``selectPilots``, ``getPilotInfo``, ``setPilotStatus``).
DIRAC's ``ServerUtils.getPilotAgentsDB`` is not used: it falls back to the service when the
configured database cannot be reached, hiding the outage this choice must report.
"""

from __future__ import annotations

from dataclasses import dataclass

from DIRAC import S_OK
from DIRAC.Core.Utilities.DErrno import EWMSNOPILOT, cmpError

PILOTAGENTSDB = "WorkloadManagement/PilotAgentsDB"
PILOTMANAGER = "WorkloadManagement/PilotManager"


@dataclass(frozen=True)
class PilotStore:
    """The pilot records' database or service (``store``), and its name for errors."""

    store: object
    name: str


def pilot_store() -> PilotStore:
    """PilotAgentsDB where configured on this host (DIRAC's DB raises RuntimeError when it cannot
    connect), the PilotManager service otherwise."""
    from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters

    if getDBParameters(PILOTAGENTSDB)["OK"]:
        from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

        return PilotStore(PilotAgentsDB(), PILOTAGENTSDB)
    from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

    return PilotStore(PilotManagerClient(), f"the {PILOTMANAGER} service")


def pilot_info(store, references: list[str]):
    """``store.getPilotInfo(references)``: S_OK({reference: info}), S_OK({}) when none of them is
    known (DIRAC answers that with the error EWMSNOPILOT)."""
    result = store.getPilotInfo(references)
    if not result["OK"] and cmpError(result, EWMSNOPILOT):
        return S_OK({})
    return result
