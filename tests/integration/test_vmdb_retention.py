"""VMDB retention on the private MariaDB: what goes, what stays, heartbeat compaction, and the
VMDBRetentionAgent run as DIRAC runs it (``dirac-agent ... -o MaxCycles=1``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from agent_run import run_agent_once

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBRetention import (
    RetentionPolicy,
    apply_retention,
    compact_heartbeats,
)

NOW = dt.datetime(2027, 6, 1, 12, 0, 0)
CONFIG_TEMPLATE = (Path(__file__).resolve().parents[2] / "JenniferDIRAC" / "WorkloadManagementSystem"
                   / "ConfigTemplate.cfg")


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


def record(name, created):
    return {"vm_name": name, "vm_id": "id-" + name, "ce": "cloud.retention.test", "site": "CLOUD.Retention.test",
            "vo": "vo", "profile": "default", "pilot_reference": f"cloud://cloud.retention.test/{name}",
            "stamp": "0" * 32, "flavor": "m1.small", "cores": 1, "ram_mb": 2048, "created": created}


def add_vm(db, name, created, deleted=None, accounted=False, beats=3):
    ok(db.recordVMs([record(name, created)]))
    ok(db.storeLog(name, "boot", b"boot log of " + name.encode()))
    for i in range(beats):
        ok(db.addHeartbeat(name, created + dt.timedelta(minutes=10 * i), load="0.1"))
    if deleted is not None:
        ok(db.markVMsDeleted([name], "done", when=deleted))
    if accounted:
        ok(db.markAccounted(name))


def names(db):
    return {vm["vm_name"] for vm in ok(db.getVMs())}


def test_retention_purges_old_accounted_vms_and_old_logs_never_live_or_unaccounted_ones(vmdb, mariadb):
    db = vmdb.db
    long_ago = NOW - dt.timedelta(days=200)
    add_vm(db, "old-accounted", long_ago, deleted=long_ago + dt.timedelta(hours=1), accounted=True)
    add_vm(db, "old-unaccounted", long_ago, deleted=long_ago + dt.timedelta(hours=1))
    add_vm(db, "live", long_ago)  # never deleted: a VM still running (or never seen to end)
    add_vm(db, "month-old", NOW - dt.timedelta(days=41), deleted=NOW - dt.timedelta(days=40), accounted=True)
    add_vm(db, "recent", NOW - dt.timedelta(days=11), deleted=NOW - dt.timedelta(days=10), accounted=True,
           beats=30)
    # Rows an interrupted purge left behind, without their VM row.
    for table, columns, values in (
        ("VMLogs", "(`VMName`, `Kind`, `Content`, `OriginalSize`, `Updated`)", "('ghost', 'boot', 'x', 1, %s)"),
        ("VMHeartbeats", "(`VMName`, `HeartbeatTime`)", "('ghost', %s)"),
    ):
        mariadb.execute(f"INSERT INTO {table} {columns} VALUES {values}", database=vmdb.dbname,
                        params=(long_ago,))

    done = ok(apply_retention(db, RetentionPolicy(), NOW))

    assert names(db) == {"old-unaccounted", "live", "month-old", "recent"}
    assert ok(db.getLogs("live")) and ok(db.getLogs("recent"))
    assert ok(db.getLogs("old-unaccounted")) == {} and ok(db.getLogs("month-old")) == {}
    assert len(ok(db.getHeartbeats("live"))) == 3  # a live VM is never compacted
    assert len(ok(db.getHeartbeats("recent"))) == 6  # 30 beats, 12:00-16:50: the first of 5 hours + the last
    ghost_rows = sum(mariadb.execute(f"SELECT COUNT(*) FROM {t} WHERE `VMName` = 'ghost'",
                                     database=vmdb.dbname)[0][0] for t in ("VMLogs", "VMHeartbeats"))
    assert ghost_rows == 0
    # heartbeats: 24 of recent, the ghost's, the middle one of month-old and of old-unaccounted
    assert done["vms"] == 1 and done["logs"] == 3 and done["heartbeats"] == 24 + 1 + 1 + 1
    # A second pass finds nothing more to do.
    again = ok(apply_retention(db, RetentionPolicy(), NOW))
    assert (again["vms"], again["logs"], again["heartbeats"]) == (0, 0, 0)


def test_heartbeat_compaction_keeps_the_first_the_last_and_the_first_of_every_hour(vmdb):
    db = vmdb.db
    start = dt.datetime(2027, 1, 1, 9, 47, 0)
    beats = [start + dt.timedelta(minutes=7 * i) for i in range(40)]  # 9:47 .. 14:20
    ok(db.recordVMs([record("vm", start)]))
    for when in beats:
        ok(db.addHeartbeat("vm", when))
    ok(db.markVMsDeleted(["vm"], "done", when=beats[-1]))
    firsts = {}
    for when in beats:
        firsts.setdefault(when.replace(minute=0, second=0), when)
    expected = sorted({beats[0], beats[-1], *firsts.values()})

    assert ok(compact_heartbeats(db, beats[-1] + dt.timedelta(days=2))) == len(beats) - len(expected)
    assert [when for when, _ in ok(db.getHeartbeats("vm"))] == expected
    assert ok(compact_heartbeats(db, beats[-1] + dt.timedelta(days=2))) == 0
    # Heartbeats of a VM deleted after the cutoff are left whole.
    ok(db.recordVMs([record("later", start)]))
    for when in beats:
        ok(db.addHeartbeat("later", when))
    ok(db.markVMsDeleted(["later"], "done", when=beats[-1] + dt.timedelta(days=3)))
    assert ok(compact_heartbeats(db, beats[-1] + dt.timedelta(days=2))) == 0
    assert len(ok(db.getHeartbeats("later"))) == len(beats)


def test_policy_defaults_are_the_config_template_and_bad_options_are_named():
    from diraccfg import CFG

    section = CFG().loadFromFile(str(CONFIG_TEMPLATE))["Agents"]["VMDBRetentionAgent"]
    from_template = RetentionPolicy.from_options(lambda option, default: section.getOption(option, default))
    assert from_template == RetentionPolicy()
    for option, value in (("VMRetentionDays", "ninety"), ("LogRetentionDays", "0"),
                          ("HeartbeatCompactionDays", "-1"), ("BatchSize", "1.5"), ("VMRetentionDays", "nan")):
        with pytest.raises(ValueError, match=option):
            RetentionPolicy.from_options(lambda o, d, option=option, value=value: value if o == option else d)


def _agent_cfg(vmdb, tmp_path, **options):
    from diraccfg import CFG

    agent = "".join(f"        {key} = {value}\n" for key, value in options.items())
    extra = ("DIRAC\n{\n  Security\n  {\n    UseServerCertificate = no\n  }\n}\n"
             "Systems\n{\n  WorkloadManagement\n  {\n    Agents\n    {\n      VMDBRetentionAgent\n      {\n"
             + agent + "      }\n    }\n  }\n}\n")
    cfg = tmp_path / "agent.cfg"
    cfg.write_text(str(CFG().loadFromBuffer(vmdb.cfg).mergeWith(CFG().loadFromBuffer(extra))))
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return cfg, root


def test_agent_cycle_applies_the_retention_options(vmdb, mariadb, tmp_path):
    db = vmdb.db
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    add_vm(db, "week-old", now - dt.timedelta(days=8), deleted=now - dt.timedelta(days=7), accounted=True)
    add_vm(db, "yesterday", now - dt.timedelta(days=2), deleted=now - dt.timedelta(days=1), accounted=True)
    add_vm(db, "running", now - dt.timedelta(days=30))
    cfg, root = _agent_cfg(vmdb, tmp_path, VMRetentionDays=5, LogRetentionDays=1.5)

    code, out = run_agent_once("WorkloadManagement/VMDBRetentionAgent", cfg, root, timeout=180)

    assert code == 0, out
    assert "1 VM(s) purged (deleted > 5 days)" in out, out
    assert names(db) == {"yesterday", "running"}
    assert ok(db.getLogs("yesterday")) and ok(db.getLogs("running"))
    assert mariadb.password not in out


def test_agent_refuses_a_bad_option_naming_it(vmdb, tmp_path):
    add_vm(vmdb.db, "kept", NOW - dt.timedelta(days=400), deleted=NOW - dt.timedelta(days=399), accounted=True)
    cfg, root = _agent_cfg(vmdb, tmp_path, VMRetentionDays="forever")
    code, out = run_agent_once("WorkloadManagement/VMDBRetentionAgent", cfg, root, timeout=180)
    assert "option VMRetentionDays: 'forever' is not a number of days" in out, out
    assert names(vmdb.db) == {"kept"}
