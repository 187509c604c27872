"""The VMDirector's orphan sightings file (Director/sightings.py): kept across a restart, but only
while it is from the previous cycle."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from unittest.mock import MagicMock

from JenniferDIRAC.WorkloadManagementSystem.Director.sightings import (
    SIGHTINGS_MAX_AGE_CYCLES,
    OrphanSightingsFile,
)

SIGHTINGS = {"ce-a": frozenset({"jdirac-" + "a" * 32, "jdirac-" + "b" * 32}), "ce-b": frozenset()}


def test_saved_sightings_are_loaded_by_the_next_agent(tmp_path):
    OrphanSightingsFile(str(tmp_path / "work")).save(SIGHTINGS, MagicMock())  # the directory is made
    assert OrphanSightingsFile(str(tmp_path / "work")).load(polling_seconds=120) == SIGHTINGS
    assert not (tmp_path / "work" / "orphan-sightings.json.new").exists()


def test_sightings_older_than_the_previous_cycle_are_forgotten(tmp_path):
    sightings = OrphanSightingsFile(str(tmp_path))
    sightings.save(SIGHTINGS, MagicMock())
    old = time.time() - SIGHTINGS_MAX_AGE_CYCLES * 120 - 5
    saved = json.loads(Path(sightings.path).read_text())
    with open(sightings.path, "w") as stream:
        json.dump({**saved, "time": old}, stream)
    assert sightings.load(polling_seconds=120) == {}
    assert sightings.load(polling_seconds=600) == SIGHTINGS  # three cycles of 10 minutes: recent


def test_a_missing_or_damaged_file_means_no_sightings(tmp_path):
    sightings = OrphanSightingsFile(str(tmp_path))
    assert sightings.load(polling_seconds=60) == {}
    for text in ("{not json", '{"time": "soon", "ces": {}}', '{"ces": {}}', "[]"):
        with open(sightings.path, "w") as stream:
            stream.write(text)
        assert sightings.load(polling_seconds=60) == {}, text


def test_a_file_that_cannot_be_written_is_logged_not_raised(tmp_path):
    blocker = tmp_path / "work"
    blocker.write_text("a file where the directory should be")
    log = MagicMock()
    OrphanSightingsFile(str(blocker)).save(SIGHTINGS, log)
    assert log.warn.call_args[0][0] == "Cannot save the orphan sightings"
    assert os.path.isfile(blocker)
