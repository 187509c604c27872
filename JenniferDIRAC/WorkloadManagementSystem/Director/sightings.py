"""The orphan sightings of the last cycle (CE -> VM names listed without a pilot record).

They survive a restart in a file of the agent's work directory, but only as long as they are
from the previous cycle: sightings must be consecutive.
"""

from __future__ import annotations

import json
import os
import time

#: Sightings saved more than this many polling times ago are not from the previous cycle.
SIGHTINGS_MAX_AGE_CYCLES = 3


class OrphanSightingsFile:
    """The sightings file, ``orphan-sightings.json`` in `directory`."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "orphan-sightings.json")

    def load(self, polling_seconds: float) -> dict[str, frozenset[str]]:
        """The saved sightings if they are from the previous cycle, {} otherwise."""
        try:
            with open(self.path) as stream:
                saved = json.load(stream)
            age = time.time() - float(saved["time"])
            if age > SIGHTINGS_MAX_AGE_CYCLES * max(float(polling_seconds), 60.0):
                return {}
            return {ce: frozenset(names) for ce, names in saved["ces"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save(self, sightings: dict[str, frozenset[str]], log) -> None:
        """Replace the file (atomically); a failure is logged, the agent carries on."""
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path + ".new", "w") as stream:
                json.dump(
                    {"time": time.time(), "ces": {ce: sorted(n) for ce, n in sightings.items()}}, stream
                )
            os.replace(self.path + ".new", self.path)
        except OSError as exc:
            log.warn("Cannot save the orphan sightings", f"{self.path}: {exc}")
