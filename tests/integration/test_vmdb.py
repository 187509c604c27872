"""VMDB on the private MariaDB: schema, every method, concurrency and hostile values."""

import datetime as dt
import threading

import pytest

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import TABLES, VMDB

T0 = dt.datetime(2026, 11, 29, 8, 0, 0)


def record(name, ce="cloud.example.org", **extra):
    base = {
        "vm_name": name,
        "vm_id": "id-" + name,
        "ce": ce,
        "site": "CLOUD.Example.uk",
        "vo": "belle",
        "profile": "default",
        "pilot_reference": f"cloud://{ce}/{name}",
        "stamp": "0" * 32,
        "flavor": "m1.large",
        "cores": 4,
        "ram_mb": 8192,
        "created": T0,
    }
    base.update(extra)
    return base


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


def test_tables_created_once_and_reused(vmdb, mariadb):
    tables = {row[0] for row in mariadb.execute("SHOW TABLES", database=vmdb.dbname)}
    assert tables == set(TABLES)
    ok(vmdb.db.recordVMs([record("jdirac-a")]))
    # A second instance on the same database keeps the data (no re-creation).
    again = VMDB()
    assert [vm["vm_name"] for vm in ok(again.getVMs())] == ["jdirac-a"]


def test_sql_file_is_package_data_and_loads(mariadb):
    from importlib.resources import files

    sql = files("JenniferDIRAC.WorkloadManagementSystem.DB").joinpath("VMDB.sql")
    assert sql.is_file()
    assert "USE VMDB;" in sql.read_text()
    mariadb.create_database("VMDB", str(sql))
    try:
        assert mariadb.execute("SHOW DATABASES LIKE 'VMDB'") == [("VMDB",)]
    finally:
        mariadb.drop_database("VMDB")


def test_dirac_finds_the_database_definition():
    from DIRAC.Core.Utilities.Extensions import findDatabases

    assert ("WorkloadManagementSystem", "VMDB.sql") in findDatabases("JenniferDIRAC")


def test_record_and_get_round_trip(vmdb):
    db = vmdb.db
    assert ok(db.recordVMs([record("jdirac-1"), record("jdirac-2", ce="other.ce")])) == 2
    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs())}
    assert set(vms) == {"jdirac-1", "jdirac-2"}
    vm = vms["jdirac-1"]
    assert vm["vm_id"] == "id-jdirac-1"
    assert vm["cores"] == 4 and vm["ram_mb"] == 8192
    assert vm["created"] == T0
    assert vm["cloud_state"] == "BUILD"
    assert vm["deleted"] is None and vm["accounted"] is False
    assert [v["vm_name"] for v in ok(db.getVMs(ce="other.ce"))] == ["jdirac-2"]
    assert [v["vm_name"] for v in ok(db.getVMs(names=["jdirac-1"]))] == ["jdirac-1"]
    assert ok(db.getVMs(names=[])) == []
    ref = "cloud://cloud.example.org/jdirac-1"
    assert [v["vm_name"] for v in ok(db.getVMs(pilot_references=ref))] == ["jdirac-1"]


def test_recording_again_fills_in_missing_fields_only(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("jdirac-1", vm_id="")]))
    ok(db.setVMStates({"jdirac-1": "ACTIVE"}))
    ok(db.recordVMs([record("jdirac-1", vm_id="srv-42", cores=0)]))
    (vm,) = ok(db.getVMs())
    assert vm["vm_id"] == "srv-42"
    assert vm["cores"] == 4  # 0 means "not known", never overwrites
    assert vm["cloud_state"] == "ACTIVE"  # lifecycle fields untouched


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"ce": "x"}, "vm_name"),
        ({"vm_name": "a"}, "ce"),
        ({"vm_name": "a", "ce": "x", "cores": -1}, "cores"),
        ({"vm_name": "a" * 200, "ce": "x"}, "vm_name"),
        ({"vm_name": "a", "ce": "x", "colour": "red"}, "colour"),
        ({"vm_name": "a", "ce": "x", "created": "yesterday"}, "datetime"),
    ],
)
def test_bad_records_are_refused_naming_the_field(vmdb, bad, field):
    result = vmdb.db.recordVMs([bad])
    assert not result["OK"]
    assert field in result["Message"]
    assert ok(vmdb.db.getVMs()) == []


def test_states_set_start_end_once(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("a"), record("b"), record("c")]))
    t1, t2, t3 = (T0 + dt.timedelta(minutes=m) for m in (1, 2, 3))
    assert ok(db.setVMStates({"a": "ACTIVE", "b": "BUILD", "ghost": "ACTIVE"}, when=t1)) == 2
    ok(db.setVMStates({"a": "ACTIVE", "b": {"state": "ERROR", "fault": "No valid host"}}, when=t2))
    ok(db.setVMStates({"a": "SHUTOFF", "b": "ERROR"}, when=t3))
    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs())}
    a, b = vms["a"], vms["b"]
    assert (a["started"], a["ended"], a["cloud_state"], a["cloud_state_time"]) == (t1, t3, "SHUTOFF", t3)
    assert b["started"] is None and b["ended"] == t2 and b["fault"] == "No valid host"
    assert b["cloud_state_time"] == t2  # unchanged state keeps its time
    # Explicit times from the cloud listing win over "when".
    aware = dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    ok(db.setVMStates({"c": {"state": "ACTIVE", "started": aware}}, when=t3))
    (c,) = ok(db.getVMs(names="c"))
    assert c["started"] == dt.datetime(2026, 11, 29, 8, 30)
    assert {vm["vm_name"] for vm in ok(db.getVMs(states=["SHUTOFF", "ERROR"]))} == {"a", "b"}


def test_mark_deleted_first_reason_wins(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("a"), record("b")]))
    t1 = T0 + dt.timedelta(hours=1)
    assert ok(db.markVMsDeleted({"a": "ERROR: No valid host", "b": "zombie"}, when=t1)) == 2
    ok(db.markVMsDeleted(["a"], reason="again", when=t1 + dt.timedelta(hours=1)))
    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs())}
    assert vms["a"]["deleted"] == t1 and vms["a"]["delete_reason"] == "ERROR: No valid host"
    assert vms["a"]["ended"] == t1
    assert ok(db.getVMs(active_only=True)) == []


def test_backoff_lifecycle_and_probe(vmdb):
    db = vmdb.db
    assert ok(db.getBackoff("ce1")) is None
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)
    row = ok(db.setBackoff("ce1", "default", future, "3 VMs fizzled"))
    assert row["active"] and row["failures"] == 1 and row["reason"] == "3 VMs fizzled" and not row["probe"]
    # An earlier end never shortens a running backoff.
    row = ok(db.setBackoff("ce1", "default", past, "create failed"))
    assert row["active"] and row["failures"] == 2 and row["reason"] == "3 VMs fizzled"
    assert ok(db.claimProbe("ce1", "default", "vm-probe")) is False  # still backing off
    assert ok(db.getBackoff("ce1")) is None  # profiles are separate
    # Once expired: exactly one probe.
    ok(db.setBackoff("ce2", "", past, "ERROR VM"))
    assert ok(db.claimProbe("ce2", "", "vm-p1")) is True
    assert ok(db.claimProbe("ce2", "", "vm-p2")) is False
    row = ok(db.getBackoff("ce2"))
    assert row["probe"] and row["probe_vm"] == "vm-p1" and not row["active"]
    ok(db.releaseProbe("ce2"))
    assert ok(db.claimProbe("ce2", "", "vm-p2")) is True
    assert ok(db.clearBackoff("ce2")) == 1
    assert ok(db.getBackoff("ce2")) is None
    assert ok(db.claimProbe("ce2", "", "vm-p3")) is False  # no backoff: no probe needed
    assert [(b["ce"], b["profile"]) for b in ok(db.getBackoffs())] == [("ce1", "default")]


def test_set_backoff_returns_the_row_as_stored(vmdb):
    db = vmdb.db
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)
    for reason in ("first", "second"):  # inserted, then updated
        row = ok(db.setBackoff("ce-row", "p", until, reason))
        assert row == ok(db.getBackoff("ce-row", "p"))
    assert row["reason"] == "second" and row["failures"] == 2 and row["active"]


def test_concurrent_set_backoff_counts_every_failure_and_keeps_latest_end(vmdb):
    db = vmdb.db
    base = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    errors = []

    def fail(i):
        for j in range(5):
            res = db.setBackoff("busy-ce", "p", base + dt.timedelta(seconds=i * 10 + j), f"failure {i}/{j}")
            if not res["OK"]:
                errors.append(res["Message"])

    threads = [threading.Thread(target=fail, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = ok(db.getBackoffs(ce="busy-ce"))
    assert len(rows) == 1
    assert rows[0]["failures"] == 40
    assert rows[0]["until"] == (base + dt.timedelta(seconds=74)).replace(tzinfo=None, microsecond=0)
    assert rows[0]["reason"] == "failure 7/4"


def test_concurrent_claims_give_one_probe(vmdb):
    db = vmdb.db
    ok(db.setBackoff("ce", "", dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5), "x"))
    winners = []
    barrier = threading.Barrier(6)

    def claim(i):
        barrier.wait()
        if db.claimProbe("ce", "", f"vm-{i}")["Value"]:
            winners.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert ok(db.getBackoff("ce"))["probe_vm"] == f"vm-{winners[0]}"


def test_concurrent_backoff_writes_from_two_vmdbs_meet_at_the_database(vmdb):
    """Two VMDB objects share no in-process turn (as two processes): their threads' writes to one
    row collide at the compare-and-set; none is lost and only one probe is claimed."""
    dbs = [vmdb.db, VMDB()]
    base = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    errors, winners = [], []
    barrier = threading.Barrier(8)

    def fail(i):
        barrier.wait()
        for j in range(5):
            res = dbs[i % 2].setBackoff("two-ce", "p", base + dt.timedelta(seconds=i * 10 + j), f"failure {i}/{j}")
            if not res["OK"]:
                errors.append(res["Message"])

    def claim(i):
        barrier.wait()
        if ok(dbs[i % 2].claimProbe("ended-ce", "", f"vm-{i}")):
            winners.append(i)

    ok(vmdb.db.setBackoff("ended-ce", "", dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5), "x"))
    for target in (fail, claim):
        threads = [threading.Thread(target=target, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    row = ok(vmdb.db.getBackoff("two-ce", "p"))
    assert row["failures"] == 40
    assert row["until"] == (base + dt.timedelta(seconds=74)).replace(tzinfo=None, microsecond=0)
    assert len(winners) == 1
    assert ok(dbs[1].getBackoff("ended-ce"))["probe_vm"] == f"vm-{winners[0]}"


def test_concurrent_record_vms(vmdb):
    db = vmdb.db
    errors = []

    def create(i):
        # Each thread records its own VMs and one name shared by all.
        res = db.recordVMs([record(f"vm-{i}-{k}") for k in range(10)] + [record("shared")])
        if not res["OK"]:
            errors.append(res["Message"])

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = [vm["vm_name"] for vm in ok(db.getVMs())]
    assert len(names) == 81 and len(set(names)) == 81


HOSTILE = [
    "x'; DROP TABLE VMs; --",
    'quote" OR "1"="1',
    "back\\slash\\",
    "percent %s %(x)s %%",
    "ünïcødé-☁️-云",
    "`backtick`",
    "nul\x00byte",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_values_are_stored_verbatim(vmdb, name):
    db = vmdb.db
    ok(db.recordVMs([record(name, ce=name, site=name, vo=name)]))
    ok(db.setVMStates({name: {"state": "ERROR", "fault": name}}))
    ok(db.storeLog(name, "console", name.encode()))
    ok(db.setBackoff(name, name, T0, name))
    (vm,) = ok(db.getVMs(ce=name, names=[name], site=name, vo=name))
    assert vm["vm_name"] == name and vm["fault"] == name
    assert ok(db.getLogs(name)) == {"console": name.encode()}
    assert ok(db.getBackoff(name, name))["reason"] == name
    ok(db.markVMsDeleted({name: name}))
    assert ok(db.getVMs(names=name))[0]["delete_reason"] == name
    assert {t for t in TABLES} <= {row[0] for row in db._query("SHOW TABLES")["Value"]}


def test_heartbeats_bounded_and_latest_kept(vmdb):
    db = vmdb.db
    db.maxHeartbeats = 5
    ok(db.recordVMs([record("hb")]))
    for i in range(12):
        ok(db.addHeartbeat("hb", T0 + dt.timedelta(minutes=i), load=f"{i}.0"))
    # An old heartbeat arriving late does not move LastHeartbeat back.
    ok(db.addHeartbeat("hb", T0, load="late"))
    beats = ok(db.getHeartbeats("hb"))
    assert len(beats) == 5
    assert beats[-1] == (T0, "late")
    (vm,) = ok(db.getVMs(names="hb"))
    assert vm["last_heartbeat"] == T0 + dt.timedelta(minutes=11)
    result = db.addHeartbeat("nobody", T0)
    assert not result["OK"] and "unknown VM 'nobody'" in result["Message"]


def test_shutdown_message(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("s")]))
    ok(db.setShutdownMessage("s", 300, "Nothing to do"))
    (vm,) = ok(db.getVMs(names="s"))
    assert (vm["shutdown_code"], vm["shutdown_message"]) == (300, "Nothing to do")
    assert not db.setShutdownMessage("s", "300", "x")["OK"]


def test_logs_are_bounded_keeping_the_tail(vmdb):
    db = vmdb.db
    db.maxLogBytes = 1000
    ok(db.recordVMs([record("l")]))
    big = bytes(range(256)) * 20  # 5120 bytes, binary
    ok(db.storeLog("l", "console", big))
    ok(db.storeLog("l", "shutdown_message", b"300 Nothing to do"))
    logs = ok(db.getLogs("l"))
    assert logs["console"] == big[-1000:]
    assert logs["shutdown_message"] == b"300 Nothing to do"
    info = ok(db.getLogInfo("l"))
    assert info["console"]["stored"] == 1000 and info["console"]["size"] == 5120
    ok(db.storeLog("l", "console", b"replaced"))
    assert ok(db.getLogs("l"))["console"] == b"replaced"
    assert not db.storeLog("l", "k" * 40, b"x")["OK"]
    assert not db.storeLog("nobody", "console", b"x")["OK"]


def test_accounting_figures_and_mark_accounted(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("ran"), record("never"), record("running")]))
    ok(db.setVMStates({"ran": "ACTIVE", "running": "ACTIVE"}, when=T0 + dt.timedelta(minutes=2)))
    ok(db.setVMStates({"ran": "SHUTOFF"}, when=T0 + dt.timedelta(hours=2, minutes=2)))
    ok(db.markVMsDeleted(["never"], "boot timeout", when=T0 + dt.timedelta(hours=1)))
    records = {r["vm_name"]: r for r in ok(db.getAccountingRecords())}
    assert set(records) == {"ran", "never"}
    assert records["ran"]["wall_seconds"] == 7200
    assert records["never"]["wall_seconds"] == 0 and records["never"]["end"] == T0 + dt.timedelta(hours=1)
    assert ok(db.markAccounted(["ran", "never"])) == 2
    assert ok(db.markAccounted("ran")) == 0  # already accounted
    assert ok(db.getAccountingRecords()) == []


def test_purge_removes_old_accounted_deleted_vms_only(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("old"), record("old-unaccounted"), record("live")]))
    ok(db.storeLog("old", "console", b"x"))
    ok(db.addHeartbeat("old", T0))
    ok(db.markVMsDeleted(["old", "old-unaccounted"], "done", when=T0))
    ok(db.markAccounted("old"))
    assert ok(db.purgeDeletedVMs(T0 + dt.timedelta(days=1))) == 1
    assert {vm["vm_name"] for vm in ok(db.getVMs())} == {"old-unaccounted", "live"}
    assert ok(db.getLogs("old")) == {} and ok(db.getHeartbeats("old")) == []


def test_batch_is_one_transaction_rolled_back_on_failure(vmdb, monkeypatch):
    from DIRAC import S_ERROR

    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables import values

    db = vmdb.db
    monkeypatch.setattr(values, "CHUNK", 10)
    real = db._updatemany
    calls = []

    def second_chunk_fails(cmd, data, **kwargs):
        calls.append(len(data))
        if len(calls) == 2:
            return S_ERROR("connection lost")
        return real(cmd, data, **kwargs)

    monkeypatch.setattr(db, "_updatemany", second_chunk_fails)
    result = db.recordVMs([record(f"vm-{i:02d}") for i in range(25)])
    assert not result["OK"] and calls == [10, 10]
    monkeypatch.setattr(db, "_updatemany", real)
    assert ok(db.getVMs()) == []  # the first chunk was rolled back
    assert ok(db.recordVMs([record(f"vm-{i:02d}") for i in range(25)])) == 25
    assert len(ok(VMDB().getVMs())) == 25  # committed: visible to every connection


def test_lost_database_gives_an_error_not_a_stall(vmdb, mariadb):
    db = vmdb.db
    ok(db.recordVMs([record("x")]))
    assert db.connectRetries == 1
    mariadb.drop_database(vmdb.dbname)
    results = []
    # A new thread gets a new connection: selecting the database fails, is retried once, gives up.
    thread = threading.Thread(target=lambda: results.append(db.getVMs()))
    thread.start()
    thread.join()
    (result,) = results
    assert not result["OK"] and "Could not select db" in result["Message"]


# --- failure kinds and the upgrade from v0.1.0 ---------------------------------------------------
#: The VMs table exactly as JenniferDIRAC v0.1.0 created it (no FailureKind column).
V010_VMS_TABLE = """CREATE TABLE `VMs` (
  `VMName` VARCHAR(128) NOT NULL,
  `VMID` VARCHAR(128) NOT NULL DEFAULT '',
  `CE` VARCHAR(128) NOT NULL,
  `Site` VARCHAR(128) NOT NULL DEFAULT '',
  `VO` VARCHAR(64) NOT NULL DEFAULT '',
  `Profile` VARCHAR(64) NOT NULL DEFAULT '',
  `PilotReference` VARCHAR(255) NOT NULL DEFAULT '',
  `Stamp` VARCHAR(32) NOT NULL DEFAULT '',
  `Flavor` VARCHAR(128) NOT NULL DEFAULT '',
  `Cores` INT UNSIGNED NOT NULL DEFAULT 0,
  `RAMMB` INT UNSIGNED NOT NULL DEFAULT 0,
  `Created` DATETIME NOT NULL,
  `Started` DATETIME NULL DEFAULT NULL,
  `Ended` DATETIME NULL DEFAULT NULL,
  `CloudState` VARCHAR(16) NOT NULL DEFAULT 'BUILD',
  `CloudStateTime` DATETIME NULL DEFAULT NULL,
  `Fault` VARCHAR(512) NOT NULL DEFAULT '',
  `Deleted` DATETIME NULL DEFAULT NULL,
  `DeleteReason` VARCHAR(512) NOT NULL DEFAULT '',
  `LastHeartbeat` DATETIME NULL DEFAULT NULL,
  `HeartbeatLoad` VARCHAR(128) NOT NULL DEFAULT '',
  `ShutdownCode` INT NULL DEFAULT NULL,
  `ShutdownMessage` VARCHAR(512) NOT NULL DEFAULT '',
  `Accounted` TINYINT(1) NOT NULL DEFAULT 0,
  `AccountedTime` DATETIME NULL DEFAULT NULL,
  PRIMARY KEY (`VMName`),
  INDEX `CE` (`CE`, `Deleted`),
  INDEX `PilotReference` (`PilotReference`),
  INDEX `Unaccounted` (`Accounted`, `Ended`)
) ENGINE=InnoDB"""


def test_failed_creates_record_their_typed_kind(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("q"), record("c"), record("z")]))
    assert ok(db.markVMsDeleted({
        "q": {"reason": "HTTP 403: Quota exceeded for instances", "failure_kind": "quota"},
        "c": {"reason": "HTTP 403: Maximum number of metadata items exceeds 128", "failure_kind": "configuration"},
        "z": "zombie",
    })) == 3
    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs())}
    assert {n: vms[n]["failure_kind"] for n in vms} == {"q": "quota", "c": "configuration", "z": ""}
    assert vms["c"]["delete_reason"].endswith("exceeds 128")
    # the first deletion wins, kind included
    ok(db.markVMsDeleted({"q": {"reason": "again", "failure_kind": "cloud_fault"}}))
    assert ok(db.getVMs(names="q"))[0]["failure_kind"] == "quota"


@pytest.mark.parametrize("value, problem", [
    ({"reason": "x", "failure_kind": "quota exceeded"}, "failure_kind"),
    ({"reason": "x", "kind": "quota"}, "unknown field"),
])
def test_bad_failure_kinds_are_refused_naming_the_field(vmdb, value, problem):
    ok(vmdb.db.recordVMs([record("a")]))
    result = vmdb.db.markVMsDeleted({"a": value})
    assert not result["OK"] and problem in result["Message"]
    assert ok(vmdb.db.getVMs(names="a"))[0]["deleted"] is None


def _columns(mariadb, dbname):
    return [row[0] for row in mariadb.execute("SHOW COLUMNS FROM VMs", database=dbname)]


def test_a_v010_database_is_upgraded_on_first_connection(mariadb, vmdb):
    dbname = vmdb.dbname
    for table in TABLES:
        mariadb.execute(f"DROP TABLE `{table}`", database=dbname)
    mariadb.execute(V010_VMS_TABLE, database=dbname)
    mariadb.execute(
        "INSERT INTO VMs (VMName, CE, Created, Deleted, DeleteReason) VALUES "
        "('old', 'cloud.example.org', '2026-11-01 10:00:00', '2026-11-01 10:01:00', 'create failed: boom')",
        database=dbname,
    )
    assert "FailureKind" not in _columns(mariadb, dbname)
    upgraded = VMDB()  # what the new version does on its first connection
    assert _columns(mariadb, dbname)[-2:] == ["FailureKind", "Changed"]
    (old,) = ok(upgraded.getVMs(names="old"))
    assert old["delete_reason"] == "create failed: boom" and old["failure_kind"] == ""
    ok(upgraded.recordVMs([record("new")]))
    ok(upgraded.markVMsDeleted({"new": {"reason": "No valid host", "failure_kind": "capacity"}}))
    assert ok(upgraded.getVMs(names="new"))[0]["failure_kind"] == "capacity"
    assert {row[0] for row in mariadb.execute("SHOW TABLES", database=dbname)} == set(TABLES)
    VMDB()  # idempotent: a second connection changes nothing
    assert _columns(mariadb, dbname).count("FailureKind") == 1


def test_the_sql_file_upgrades_a_v010_database_and_is_idempotent(mariadb):
    from importlib.resources import files

    sql = files("JenniferDIRAC.WorkloadManagementSystem.DB").joinpath("VMDB.sql").read_text()
    mariadb.create_database("VMDB")
    try:
        script = [s.strip() for s in sql.split("\n") if s.strip() and not s.startswith("--")]
        statements = [s for s in " ".join(script).split(";") if s.strip()]
        for statement in statements:  # on a fresh database (dirac-install-db): nothing to upgrade
            mariadb.execute(statement, database="VMDB")
        mariadb.execute(V010_VMS_TABLE, database="VMDB")
        for _ in range(2):  # dirac-install-db on an existing v0.1.0 database, twice
            for statement in statements:
                mariadb.execute(statement, database="VMDB")
        assert _columns(mariadb, "VMDB").count("FailureKind") == 1
    finally:
        mariadb.drop_database("VMDB")
