"""Upgrades lose nothing: a VMDB made by v0.1.0 and full of rows is upgraded in place, by the
VMDB class on its first connection and by ``dirac-install-db``'s VMDB.sql, with every row kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from vmdb_testkit import V010_SCHEMA, vmdb_on
from vmdb_testkit import v010_database as made_v010_database

from JenniferDIRAC.WorkloadManagementSystem.DB import VMDB as vmdb_module
VMDB_SQL = Path(vmdb_module.__file__).with_name("VMDB.sql")
T0 = dt.datetime(2026, 10, 1, 8, 0, 0)
N_VMS = 1500
#: the primary key of each v0.1.0 table, to compare rows in a stable order
KEYS = {"VMs": "VMName", "VMLogs": "VMName, Kind", "VMHeartbeats": "HeartbeatID", "VMBackoff": "CE, Profile"}


def _v010_columns(table: str) -> list[str]:
    """The columns of ``table`` in the v0.1.0 schema (from its CREATE TABLE)."""
    text = V010_SCHEMA.read_text()
    body = text.split(f"CREATE TABLE `{table}` (", 1)[1].split(") ENGINE", 1)[0]
    return [line.strip().split("`")[1] for line in body.splitlines()
            if line.strip().startswith("`")]


def _fill(mariadb, name: str) -> None:
    """Rows of every kind v0.1.0 wrote: VMs in every state, binary logs, heartbeats, backoffs."""
    conn = mariadb.connect(name)
    try:
        cursor = conn.cursor()
        vms, logs, beats = [], [], []
        for i in range(N_VMS):
            vm = f"jdirac-{i:032x}"
            created = T0 + dt.timedelta(minutes=i)
            state = ("BUILD", "ACTIVE", "SHUTOFF", "ERROR", "DELETING", "UNKNOWN")[i % 6]
            started = created + dt.timedelta(minutes=3) if state != "BUILD" else None
            ended = created + dt.timedelta(hours=2) if state in ("SHUTOFF", "ERROR") else None
            deleted = created + dt.timedelta(hours=3) if i % 3 == 0 else None
            vms.append((
                vm, f"uuid-{i}", f"ce{i % 3}.cloud.example", "CLOUD.Example.uk", ("belle", "lhcb")[i % 2],
                "default", f"cloud://ce{i % 3}.cloud.example/{vm}", f"{i:032x}", "m1.large", 4, 8192, created,
                started, ended, state, created + dt.timedelta(minutes=5),
                "No valid host was found — façade ✓" if state == "ERROR" else "", deleted,
                "create failed: quota exceeded" if i % 30 == 0 else ("pilot done" if deleted else ""),
                created + dt.timedelta(minutes=30) if started else None, "0.1 0.2 0.3" if started else "",
                (200, 300, None)[i % 3], "Intended work completed ok" if i % 3 == 0 else "",
                1 if deleted and i % 2 == 0 else 0, deleted if deleted and i % 2 == 0 else None,
            ))
            if i % 2 == 0:
                logs.append((vm, "boot", bytes(range(256)) * 8 + vm.encode(), 2048 + len(vm), created))
                logs.append((vm, "pilot", b"\x00\xff" * 100, 200, created))
            if i % 5 == 0:
                beats.extend((vm, created + dt.timedelta(minutes=10 * k), f"0.{k} 0.2 0.3") for k in range(8))
        marks = ", ".join(["%s"] * 25)
        columns = ", ".join(f"`{c}`" for c in _v010_columns("VMs"))
        cursor.executemany(f"INSERT INTO VMs ({columns}) VALUES ({marks})", vms)
        cursor.executemany("INSERT INTO VMLogs VALUES (%s, %s, %s, %s, %s)", logs)
        cursor.executemany(
            "INSERT INTO VMHeartbeats (`VMName`, `HeartbeatTime`, `HeartbeatLoad`) VALUES (%s, %s, %s)", beats)
        cursor.executemany(
            "INSERT INTO VMBackoff VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(f"ce{i}.cloud.example", ("", "default")[i % 2], T0 + dt.timedelta(hours=i), f"failure {i}", i,
              i % 2, f"jdirac-{i:032x}" if i % 2 else "", T0 if i % 2 else None, T0) for i in range(6)],
        )
        conn.commit()
    finally:
        conn.close()


def _snapshot(mariadb, name: str) -> dict[str, list[tuple]]:
    """Every row of every v0.1.0 table, v0.1.0 columns only, in primary-key order."""
    return {
        table: mariadb.execute(
            f"SELECT {', '.join(f'`{c}`' for c in _v010_columns(table))} FROM `{table}` ORDER BY {key}",
            database=name,
        )
        for table, key in KEYS.items()
    }


@pytest.fixture
def v010_database(mariadb):
    """A v0.1.0 database full of rows (_fill)."""
    with made_v010_database(mariadb) as name:
        _fill(mariadb, name)
        yield name


def _columns(mariadb, name: str, table: str) -> list[str]:
    return [row[0] for row in mariadb.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION", params=(name, table))]


def _assert_current_schema(mariadb, name: str, tables=None) -> None:
    for table in tables or vmdb_module.TABLES:
        assert set(_columns(mariadb, name, table)) == set(vmdb_module.TABLES[table]["Fields"]), table


def test_first_connection_of_the_new_release_upgrades_a_full_v010_database(mariadb, v010_database):
    before = _snapshot(mariadb, v010_database)
    assert len(before["VMs"]) == N_VMS and len(before["VMLogs"]) == N_VMS and before["VMHeartbeats"]
    assert set(_columns(mariadb, v010_database, "VMs")) < set(vmdb_module.TABLES["VMs"]["Fields"])

    db = vmdb_on(mariadb, v010_database)

    _assert_current_schema(mariadb, v010_database)
    assert _snapshot(mariadb, v010_database) == before
    for table, column in vmdb_module.UPGRADES:
        default = vmdb_module.TABLES[table]["Fields"][column].split("DEFAULT", 1)[1].strip().strip("'")
        values = mariadb.execute(f"SELECT DISTINCT `{column}` FROM `{table}`", database=v010_database)
        assert values == [(default,)], (table, column, values)
    # The new release reads the old rows as they were written...
    vms = {vm["vm_name"]: vm for vm in db.getVMs()["Value"]}
    assert len(vms) == N_VMS
    error_vm = vms[f"jdirac-{3:032x}"]
    assert error_vm["cloud_state"] == "ERROR" and error_vm["fault"] == "No valid host was found — façade ✓"
    assert db.getLogs(f"jdirac-{0:032x}")["Value"]["boot"] == bytes(range(256)) * 8 + f"jdirac-{0:032x}".encode()
    assert len(db.getHeartbeats(f"jdirac-{5:032x}")["Value"]) == 8
    assert len(db.getBackoffs()["Value"]) == 6
    unaccounted = {r["vm_name"] for r in db.getAccountingRecords(limit=None)["Value"]}
    assert unaccounted == {name for name, vm in vms.items()
                           if not vm["accounted"] and (vm["ended"] or vm["deleted"])}
    # ...and writes the new column on them.
    live = f"jdirac-{1:032x}"
    assert db.markVMsDeleted({live: {"reason": "create failed: quota", "failure_kind": "quota"}})["OK"]
    assert db.getVMs(names=[live])["Value"][0]["failure_kind"] == "quota"
    # A restart (second first connection) changes nothing more.
    after_first = _snapshot(mariadb, v010_database)
    vmdb_on(mariadb, v010_database)
    assert _snapshot(mariadb, v010_database) == after_first


def test_vmdb_sql_of_dirac_install_db_upgrades_a_full_v010_database(mariadb, v010_database, tmp_path):
    before = _snapshot(mariadb, v010_database)
    script = tmp_path / "VMDB.sql"
    script.write_text(VMDB_SQL.read_text().replace("USE VMDB;", f"USE {v010_database};"))

    for _ in range(2):  # dirac-install-db may run it on every upgrade: idempotent
        mariadb.load_sql(v010_database, script)
        _assert_current_schema(mariadb, v010_database, tables=KEYS)  # the tables v0.1.0 had
        assert _snapshot(mariadb, v010_database) == before
    # The class adds what the script leaves to it (new tables) and changes no row.
    vmdb_on(mariadb, v010_database)
    _assert_current_schema(mariadb, v010_database)
    assert _snapshot(mariadb, v010_database) == before


# --- the schema version ---------------------------------------------------------------------
def _versions(mariadb, name: str) -> list[int]:
    return [row[0] for row in mariadb.execute("SELECT `Version` FROM VMDBSchema ORDER BY `Version`", database=name)]


def test_a_fresh_database_is_made_at_the_current_schema_version(mariadb, vmdb):
    assert _versions(mariadb, vmdb.dbname) == [vmdb_module.SCHEMA_VERSION]
    assert vmdb.db.getSchemaVersion()["Value"] == vmdb_module.SCHEMA_VERSION


def test_a_v010_database_gets_the_current_schema_version_once(mariadb, v010_database):
    tables = {row[0] for row in mariadb.execute("SHOW TABLES", database=v010_database)}
    assert "VMDBSchema" not in tables
    db = vmdb_on(mariadb, v010_database)
    assert db.getSchemaVersion()["Value"] == vmdb_module.SCHEMA_VERSION == 3
    assert _versions(mariadb, v010_database) == [vmdb_module.SCHEMA_VERSION]
    vmdb_on(mariadb, v010_database)  # a restart: idempotent
    assert _versions(mariadb, v010_database) == [vmdb_module.SCHEMA_VERSION]


def test_a_current_database_without_a_version_is_upgraded_idempotently(mariadb, vmdb):
    """A database made before VMDB recorded its version (v0.2.0 development) has every table:
    it is brought to the current version, with its rows, and nothing else changes."""
    db, name = vmdb.db, vmdb.dbname
    assert db.recordVMs([{"vm_name": "jdirac-kept", "ce": "ce.example", "created": T0}])["OK"]
    assert db.setBackoff("ce.example", "", T0, "kept")["OK"]
    mariadb.execute("DROP TABLE VMDBSchema", database=name)
    assert db.getSchemaVersion()["Value"] == vmdb_module.UNVERSIONED
    upgraded = vmdb_on(mariadb, name)
    assert _versions(mariadb, name) == [vmdb_module.SCHEMA_VERSION]
    assert [vm["vm_name"] for vm in upgraded.getVMs()["Value"]] == ["jdirac-kept"]
    assert upgraded.getBackoff("ce.example", "")["Value"]["reason"] == "kept"
    _assert_current_schema(mariadb, name)


def test_a_database_newer_than_the_code_is_refused_untouched(mariadb, vmdb):
    name = vmdb.dbname
    newer = vmdb_module.SCHEMA_VERSION + 1
    mariadb.execute(f"INSERT INTO VMDBSchema VALUES ({newer}, '2027-01-01 00:00:00')", database=name)
    mariadb.execute("DROP TABLE VMBootstrap", database=name)  # as if the newer schema dropped it
    with pytest.raises(RuntimeError) as refused:
        vmdb_on(mariadb, name)
    message = str(refused.value)
    assert f"schema is at version {newer}" in message and f"JenniferDIRAC's {vmdb_module.SCHEMA_VERSION}" in message
    assert "upgrade JenniferDIRAC" in message
    tables = {row[0] for row in mariadb.execute("SHOW TABLES", database=name)}
    assert "VMBootstrap" not in tables  # nothing was created or altered
    assert _versions(mariadb, name) == [vmdb_module.SCHEMA_VERSION, newer]


def test_a_version_2_database_gets_the_capacity_table(mariadb, vmdb):
    """Schema version 3 adds VMCapacity: a v0.2.0 database (version 2, no such table) gets it,
    with its rows kept, and records version 3 beside 2."""
    db, name = vmdb.db, vmdb.dbname
    assert db.recordVMs([{"vm_name": "jdirac-kept", "ce": "ce.example", "created": T0}])["OK"]
    mariadb.execute("DROP TABLE VMCapacity", database=name)
    mariadb.execute("DELETE FROM VMDBSchema", database=name)
    mariadb.execute("INSERT INTO VMDBSchema VALUES (2, '2026-11-01 00:00:00')", database=name)
    upgraded = vmdb_on(mariadb, name)
    assert _versions(mariadb, name) == [2, 3] and vmdb_module.SCHEMA_VERSION == 3
    assert [vm["vm_name"] for vm in upgraded.getVMs()["Value"]] == ["jdirac-kept"]
    assert upgraded.setNoCapacity("cloud-key", "name:m1.large", "", 60, "No valid host")["OK"]
    assert [r["flavor"] for r in upgraded.getNoCapacity("cloud-key")["Value"]] == ["name:m1.large"]
    _assert_current_schema(mariadb, name)
