"""The cloud CE with the VM database (real MariaDB): records, uploaded logs, backoff and probe."""

from __future__ import annotations

import datetime as dt

from ce_testkit import CE_NAME, SITE, VO, live_servers, ok

from JenniferDIRAC.Resources.Cloud.references import parse_reference
from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

UTC = dt.timezone.utc


def test_submitted_vms_are_recorded_with_reference_stamp_and_cloud_id(db, make_ce, wrapper, local_cloud):
    ce = make_ce()
    result = ce.submitJob(wrapper, "", 2)
    records = {r["vm_name"]: r for r in ok(db.getVMs(ce=CE_NAME))}
    assert len(records) == 2
    servers = {s.name: s for s in live_servers(local_cloud)}
    for ref in result["Value"]:
        name = parse_reference(ref)[1]
        record = records[name]
        assert record["pilot_reference"] == ref
        assert record["stamp"] == result["PilotStampDict"][ref]
        assert record["vm_id"] == servers[name].id
        assert (record["site"], record["vo"], record["flavor"], record["cores"]) == (SITE, VO, "m1.small", 1)


def test_vms_that_were_never_created_are_marked_deleted(db, make_ce, wrapper, local_cloud):
    local_cloud.compute.set_quota(instances=1, cores=-1, ram=-1)
    ce = make_ce()
    assert len(ce.submitJob(wrapper, "", 3)["Value"]) == 1
    records = ok(db.getVMs(ce=CE_NAME))
    assert len(records) == 3
    assert sum(1 for r in records if r["deleted"] is None) == 1
    refused = [r for r in records if r["deleted"] is not None]
    # the typed kind the backend read from Nova's 403, not a text contract
    assert [r["failure_kind"] for r in refused] == ["quota", "quota"]
    assert all("Quota exceeded for instances" in r["delete_reason"] for r in refused)


def test_job_output_includes_the_logs_the_vm_uploaded(db, make_ce, wrapper, local_cloud):
    ce = make_ce()
    ref = ce.submitJob(wrapper, "", 1)["Value"][0]
    name = parse_reference(ref)[1]
    ok(db.storeLog(name, "pilot", b"pilot log line\n"))
    stdout, _ = ok(ce.getJobOutput(ref))
    assert "console log" in stdout and "pilot log line" in stdout
    ce.killJob([ref])
    local_cloud.compute.finish_deletions()
    stdout, _ = ok(ce.getJobOutput(ref))  # the VM is gone, its uploaded log is not
    assert "pilot log line" in stdout and "==== console log" not in stdout
    assert "==== not available ====\nconsole log: the VM no longer exists" in stdout


def test_backoff_stops_submission_then_allows_one_probe(db, make_ce, wrapper, local_cloud):
    ce = make_ce()
    now = dt.datetime.now(UTC)
    ok(db.setBackoff(CE_NAME, "", now + dt.timedelta(hours=1), "VMs fizzled"))
    status = ce.available()
    assert status["Value"] == 0 and status["CEInfoDict"]["CloudSlotsLimitedBy"] == "backoff"
    result = ce.submitJob(wrapper, "", 2)  # called anyway (a race with the VMDirector)
    assert result["OK"] and result["Value"] == [] and live_servers(local_cloud) == []

    db._update("UPDATE VMBackoff SET `Until` = UTC_TIMESTAMP() - INTERVAL 1 SECOND")
    assert ce.available()["Value"] == 1  # probe
    first = ce.submitJob(wrapper, "", 3)
    assert len(first["Value"]) == 1
    probe = ok(db.getBackoff(CE_NAME, ""))
    assert probe["probe"] and probe["probe_vm"] == parse_reference(first["Value"][0])[1]
    assert ce.submitJob(wrapper, "", 1)["Value"] == []  # the probe is still running
    assert len(live_servers(local_cloud)) == 1


def test_missing_vm_database_does_not_stop_submission(make_ce, wrapper, local_cloud, monkeypatch, caplog):
    monkeypatch.setattr(client_module, "_db", None)
    monkeypatch.setattr(client_module, "getDBParameters", lambda name: {"OK": False, "Message": "not configured"})
    ce = make_ce()
    for _ in range(3):
        assert len(ce.submitJob(wrapper, "", 1)["Value"]) == 1
    assert len(live_servers(local_cloud)) == 3
    warnings = [r for r in caplog.records if "VM database unavailable" in r.getMessage()]
    assert len(warnings) == 1
