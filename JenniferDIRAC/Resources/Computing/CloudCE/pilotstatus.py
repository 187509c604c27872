"""Pilot references as DIRAC hands them to the CE, and the pilot status of a cloud VM's state."""

from __future__ import annotations

from collections.abc import Iterable

from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.model import VMState
from JenniferDIRAC.Resources.Cloud.references import parse_reference

#: Cloud VM state -> DIRAC pilot status.
PILOT_STATUS = {
    VMState.BUILD: PilotStatus.SUBMITTED,
    VMState.ACTIVE: PilotStatus.RUNNING,
    VMState.SHUTOFF: PilotStatus.DONE,
    VMState.ERROR: PilotStatus.FAILED,
    VMState.DELETING: PilotStatus.DELETED,
    # a state we cannot map (paused, suspended, host down...): the VM exists and is not final
    VMState.UNKNOWN: PilotStatus.RUNNING,
}


def own_vm_names(ce_name: str, references: Iterable[str], log) -> dict[str, str]:
    """{reference as given: VM name} for CE `ce_name`'s references; others are logged and left out."""
    names = {}
    for reference in references:
        try:
            ce, name = parse_reference(reference)
        except ValueError:
            log.warn("Not a pilot reference of a JenniferDIRAC cloud CE", reference)
            continue
        if ce != ce_name:
            log.warn("Pilot reference of another CE", f"{reference} (this is {ce_name})")
            continue
        names[reference] = name
    return names
