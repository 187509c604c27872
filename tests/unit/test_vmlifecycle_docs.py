"""docs/DEVELOPING.md's "The VM lifecycle" says what Lifecycle/StateMachine.py does: every phase and
event is drawn, and the table of VM ends is VM_ENDS."""

import re
from pathlib import Path

from JenniferDIRAC.WorkloadManagementSystem.Lifecycle import StateMachine as machine

DOC = Path(__file__).resolve().parents[2] / "docs" / "DEVELOPING.md"


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_queue_phase_and_event_is_in_the_diagram():
    queue = _section("The VM lifecycle").split("### A VM")[0]
    for phase in machine.QueuePhase:
        assert re.search(rf"\|\s*{phase.name}\s*\|", queue), phase  # drawn as a box
    for event in ("FailuresSeen", "StartBackoff", "ClaimProbe", "ProbePassed", "ProbeVanished", "ClearBackoff",
                  "ReleaseProbe"):
        assert event in queue and hasattr(machine, event), event


def test_the_table_of_vm_ends_is_vm_ends():
    vm_part = _section("The VM lifecycle").split("### A VM")[1]
    rows = {}
    for line in vm_part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in machine.VMEnd.__members__:
            rows[machine.VMEnd[cells[0]]] = cells
    assert set(rows) == set(machine.VMEnd)
    for end, (_, phases, pilot, backoff) in rows.items():
        rule = machine.VM_ENDS[end]
        assert {machine.VMPhase[p.strip()] for p in phases.split(",")} == rule.phases, end
        assert pilot.split(" ")[0] == (rule.pilot_status or "(unchanged)"), end
        assert backoff.startswith("yes") is rule.may_fail_queue, end
    for phase in machine.VMPhase:
        assert re.search(rf"\|\s*{phase.name}\b", vm_part), phase
