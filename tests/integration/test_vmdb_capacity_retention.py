"""Expired VMCapacity rows on the private MariaDB: the VMDBRetentionAgent's rules remove them
whether or not a CE writes to that cloud again (setNoCapacity purges only the cloud it writes
to, and only a day after expiry); rows still remembered stay. Also through a real agent cycle
(``dirac-agent ... -o MaxCycles=1``)."""

from __future__ import annotations

import datetime as dt

from agent_run import run_agent_once
from test_vmdb_retention import _agent_cfg

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBRetention import RetentionPolicy, apply_retention

NOW = dt.datetime(2027, 6, 1, 12, 0, 0)  # the VM rules' clock; VMCapacity uses the database's


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


def remember(db, mariadb, dbname, cloud, flavor, zone="", seconds=600, ended_minutes_ago=None):
    """A row of VMCapacity; ``ended_minutes_ago``: its memory ended that long ago."""
    ok(db.setNoCapacity(cloud, flavor, zone, seconds, "No valid host"))
    if ended_minutes_ago is not None:
        mariadb.execute("UPDATE VMCapacity SET `Until` = UTC_TIMESTAMP() - INTERVAL %s MINUTE "
                        "WHERE `Cloud` = %s AND `Flavor` = %s AND `Zone` = %s",
                        database=dbname, params=(ended_minutes_ago, cloud, flavor, zone))


def rows(mariadb, dbname):
    return set(mariadb.execute("SELECT `Cloud`, `Flavor`, `Zone` FROM VMCapacity", database=dbname))


def test_retention_removes_expired_capacity_rows_of_every_cloud_and_keeps_live_ones(vmdb, mariadb):
    db, name = vmdb.db, vmdb.dbname
    remember(db, mariadb, name, "cloud-a", "name:m1.large", "nova")  # remembered 10 more minutes
    remember(db, mariadb, name, "cloud-a", "name:m1.small", ended_minutes_ago=1)
    # clouds nobody writes to any more: setNoCapacity would never come back to purge them
    # (the row three days over is written last: a later write to cloud-b would purge it itself)
    for flavor, ago in (("name:m1.large", 5), ("name:m1.small", 2 * 60), ("name:m1.xlarge", 3 * 24 * 60)):
        remember(db, mariadb, name, "cloud-b", flavor, "az1", ended_minutes_ago=ago)
    remember(db, mariadb, name, "cloud-c", "name:gpu", "az2", seconds=3600)
    assert len(rows(mariadb, name)) == 6

    done = ok(apply_retention(db, RetentionPolicy(batch_size=2), NOW))  # 4 expired, 2 per statement

    assert done["capacity"] == 4
    assert rows(mariadb, name) == {("cloud-a", "name:m1.large", "nova"), ("cloud-c", "name:gpu", "az2")}
    assert [row["flavor"] for row in ok(db.getNoCapacity("cloud-a"))] == ["name:m1.large"]
    assert ok(db.getNoCapacity("cloud-b")) == []
    again = ok(apply_retention(db, RetentionPolicy(batch_size=2), NOW))
    assert again["capacity"] == 0 and len(rows(mariadb, name)) == 2


def test_an_agent_cycle_removes_expired_capacity_rows(vmdb, mariadb, tmp_path):
    db, name = vmdb.db, vmdb.dbname
    remember(db, mariadb, name, "cloud-old", "name:m1.large", "nova", ended_minutes_ago=90)
    remember(db, mariadb, name, "cloud-old", "name:m1.small", "nova", ended_minutes_ago=30)
    remember(db, mariadb, name, "cloud-live", "name:m1.large", "nova", seconds=3600)
    cfg, root = _agent_cfg(vmdb, tmp_path)

    code, out = run_agent_once("WorkloadManagement/VMDBRetentionAgent", cfg, root, timeout=180)

    assert code == 0, out
    assert "2 expired capacity memory row(s) removed" in out, out
    assert rows(mariadb, name) == {("cloud-live", "name:m1.large", "nova")}
    assert mariadb.password not in out
