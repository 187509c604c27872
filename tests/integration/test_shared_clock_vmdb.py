"""VMDB's VM times on the shared test clock: the cloud CE writes a VM's creation (and the state
time of its new record) from its `clock`, the VMDirector its state changes and deletions from
its own, so after `advance()` VMDB's times move with the cloud's and a VM's recorded life is
the one it had on that clock. PilotAgentsDB is DIRAC's and dates pilots with MariaDB's
UTC_TIMESTAMP(): that stays real time (tests/clockshift covers it under faketime).

Real parts: LocalCloud over HTTP, the cloud CE's submitJob, the VMDirector agent object in this
process (test_shared_clock's fixture), VMDB and PilotAgentsDB on MariaDB."""

from __future__ import annotations

from datetime import timedelta, timezone

from test_shared_clock import cloud_ce, cycle, director  # noqa: F401 - director is a fixture
from test_vmdirector_cycle import CE, World, world  # noqa: F401 - world is a fixture
from waiting import wait_until

from JenniferDIRAC.Resources.Cloud.references import parse_reference

TEN_DAYS = 10 * 86400


def _utc(value):
    return value.replace(tzinfo=timezone.utc)


def _near(value, expected, seconds=60):
    return abs((_utc(value) - expected).total_seconds()) <= seconds


def test_vmdb_times_follow_the_shared_clock(world, local_cloud, director, tmp_path):
    clock = local_cloud.clock
    clock.advance(TEN_DAYS)  # far from real time: a time written from the wall clock shows
    wrapper = tmp_path / "pilot-wrapper.sh"
    wrapper.write_text("#!/bin/bash\necho pilot\n")
    ce = cloud_ce(world, clock.utcnow)
    try:
        submitted = clock.utcnow()
        result = ce.submitJob(str(wrapper), "", 1)
        assert result["OK"], result.get("Message")
        (ref,) = result["Value"]
        name = parse_reference(ref)[1]
        world.add_pilot(name, "Running", update_age=1, submitted_age=1)
        (record,) = world.vmdb.db.getVMs(names=[name])["Value"]
        assert _near(record["created"], submitted), record["created"]  # was the wall clock's
        assert _near(record["cloud_state_time"], submitted)

        server = world.servers()[name]
        wait_until(lambda: server.status == "ACTIVE", 30, "the VM running", interval=0.05)
        clock.advance(60)
        cycle(director)
        (record,) = world.vmdb.db.getVMs(names=[name])["Value"]
        assert record["cloud_state"] == "ACTIVE" and _near(record["cloud_state_time"], clock.utcnow())
        assert ce.getJobStatus([ref])["Value"] == {ref: "Running"}

        clock.advance(86400)  # MaxLifetime is a day of the shared clock
        cycle(director)
        assert world.servers() == {}
        (record,) = world.vmdb.db.getVMs(names=[name])["Value"]
        assert record["deleted"] is not None and "maximum lifetime" in record["delete_reason"]
        assert _near(record["deleted"], clock.utcnow())  # was the wall clock's: before its creation
        lived = _utc(record["deleted"]) - _utc(record["created"])
        assert timedelta(seconds=86400) <= lived <= timedelta(seconds=86400 + 300)
        assert world.pilot(name)[0] == "Deleted"
    finally:
        ce.shutdown()
