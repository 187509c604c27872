"""Our cloud CE as DIRAC makes it, for any test: ``MadeCEs`` (CEs of CEType Cloud from DIRAC's
ComputingElementFactory, shut down together) and a pilot wrapper for submitJob. The CE tests'
fixtures over them are in tests/ce/ce_fixtures.py."""

from __future__ import annotations

from pathlib import Path

WRAPPER_TEXT = "#!/bin/bash\necho 'pilot wrapper running'\n"


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
