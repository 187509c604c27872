"""vm_records reads a CE's changed rows only (VMDB's VMs.Changed, getVMChanges) and its answer is
always the full read's: random sequences of every VMDB write on the real MariaDB, compared after
each step with a full read at the same moment; purges, late commits and errors fall back to a
full read; the column and its index are added to an existing database."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest
from DIRAC import S_ERROR, gLogger
from DIRAC.Core.Utilities import DEncode
from vmdb_testkit import v010_database, vmdb_on

from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
from JenniferDIRAC.WorkloadManagementSystem.DB import VMDB as vmdb_module
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import UTC_STATEMENT
from JenniferDIRAC.WorkloadManagementSystem.Director import vmrecords
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Director.vmrecords import KeptRecords, vm_records
from JenniferDIRAC.WorkloadManagementSystem.Service.VMManagerHandler import VMManagerHandler

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
CES = ("ce-a.example", "ce-b.example")
STATES = ("BUILD", "ACTIVE", "SHUTOFF", "ERROR", "CREATE_UNCERTAIN")


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


class CountingClient(VMStateClient):
    """VMStateClient counting its full and incremental reads of changes."""

    def __init__(self):
        super().__init__()
        self.full_reads = 0
        self.incremental_reads = 0

    def getVMChanges(self, ce, since=None):
        if since is None:
            self.full_reads += 1
        else:
            self.incremental_reads += 1
        return super().getVMChanges(ce, since)


@pytest.fixture
def client(vmdb, monkeypatch):
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    return CountingClient()


def full_read(client, ce):
    """Today's read: every live row and every unaccounted ended one, no kept records."""
    return vm_records(client, ce, None)


def assert_same_as_full(client, kept, ce):
    incremental = vm_records(client, ce, kept)
    full = full_read(client, ce)
    assert list(incremental.items()) == list(full.items())  # the same records, in the same order
    return incremental


KINDS = ("record", "states", "delete", "account", "heartbeat", "shutdown", "purge", "late", "rerecord")
#: what hypothesis draws from: the CE's creates and the cloud's states the most
DRAWN = ("record",) * 4 + ("states",) * 4 + ("delete", "account") * 2 + KINDS[4:]


class World:
    """What the CE, the VMDirector, the endpoint and the retention agent write to VMDB, one
    write at a time."""

    def __init__(self, db, mariadb, dbname):
        self.db, self.mariadb, self.dbname = db, mariadb, dbname
        self.names: list[str] = []
        self.clock = T0
        self.late_writes = 0  # each late write's own old time: two statements never share a change stamp

    def some(self, rng, most=4) -> list[str]:
        return rng.sample(self.names, min(len(self.names), rng.randint(1, most)))

    def step(self, kind: str, rng: random.Random) -> str:
        kind = "record" if len(self.names) < 3 else kind
        self.clock += dt.timedelta(seconds=rng.randint(1, 90))
        when = self.clock
        if kind == "record":
            new = [f"jdirac-{uuid.UUID(int=rng.getrandbits(128)).hex}" for _ in range(rng.randint(1, 3))]
            ok(self.db.recordVMs([{
                "vm_name": name, "ce": rng.choice(CES), "site": "CLOUD.X.uk", "vo": "vo", "cores": 2,
                "profile": rng.choice(("", "big")), "created": when - dt.timedelta(seconds=rng.randint(0, 3)),
            } for name in new]))
            self.names.extend(new)
        elif kind == "rerecord":  # the CE learns the cloud id after the create call
            name = rng.choice(self.names)
            row = ok(self.db.getVMs(names=[name]))
            if row:
                ok(self.db.recordVMs([{"vm_name": name, "ce": row[0]["ce"], "vm_id": f"id-{rng.random()}"}]))
        elif kind == "states":
            ok(self.db.setVMStates({
                name: {"state": rng.choice(STATES), "vm_id": f"id-{name[-4:]}",
                       "fault": rng.choice(("", "", "No valid host"))}
                for name in self.some(rng)
            }, when))
        elif kind == "delete":
            ok(self.db.markVMsDeleted({name: rng.choice(("gone", {"reason": "quota", "failure_kind": "quota"}))
                                       for name in self.some(rng)}, when=when))
        elif kind == "account":
            ok(self.db.markAccounted(self.some(rng), when))
        elif kind == "heartbeat":
            for name in self.some(rng, 2):
                self.db.addHeartbeat(name, when, f"0.{rng.randint(0, 9)}")
        elif kind == "shutdown":
            self.db.setShutdownMessage(rng.choice(self.names), rng.choice((0, 300, 510)), "done")
        elif kind == "purge":  # the retention agent: deleted and accounted rows go
            ok(self.db.purgeDeletedVMs(self.clock + dt.timedelta(days=1)))
        elif kind == "late":  # a transaction committed long after its statement's time
            self.late_writes += 1
            self.mariadb.execute(
                "UPDATE VMs SET `CloudState` = %s, `Changed` = '2001-01-01 00:00:00' + INTERVAL %s MICROSECOND "
                "WHERE `VMName` = %s",
                database=self.dbname, params=(rng.choice(STATES), self.late_writes, rng.choice(self.names)),
            )
        return kind


@pytest.mark.parametrize("margin", [0, 10], ids=["no-margin", "default-margin"])
def test_incremental_reads_give_the_full_reads_answer_after_every_write(vmdb, mariadb, client, monkeypatch, margin):
    """Sequences of writes (hypothesis: kinds, each with its random seed and which CEs are read
    after it), each on an empty VMs table with fresh kept records. A margin of 0 makes every
    incremental read ask exactly what changed since the last one (the writes are one statement
    at a time); the default one also what changed in the last 10 s (every row of the test)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    monkeypatch.setattr(vmrecords, "CHANGE_MARGIN", dt.timedelta(seconds=margin))
    monkeypatch.setattr(vmrecords, "FULL_READ_EVERY", 25)
    seen, sizes = set(), []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(st.tuples(st.sampled_from(DRAWN), st.integers(0, 2**32), st.sets(st.sampled_from(CES))),
                    min_size=30, max_size=100))
    def run(steps):
        for table in ("VMs", "VMHeartbeats"):
            mariadb.execute(f"DELETE FROM {table}", database=vmdb.dbname)
        world, kept = World(vmdb.db, mariadb, vmdb.dbname), KeptRecords()
        for kind, seed, read in steps:
            seen.add(world.step(kind, random.Random(seed)))
            for ce in sorted(read):
                sizes.append(len(assert_same_as_full(client, kept, ce)))
        for ce in CES:
            assert_same_as_full(client, kept, ce)

    run()
    assert {"record", "states", "delete", "account", "purge", "late"} <= seen
    assert max(sizes) >= 10  # the sequences made records to compare
    # most reads asked only for changes: full ones are the first of each CE in a sequence, one
    # every 25, and those after a purge or a late commit the check caught
    assert client.incremental_reads > 2 * client.full_reads, (client.incremental_reads, client.full_reads)


def test_unchanged_rows_are_not_read_again(vmdb, client, monkeypatch):
    monkeypatch.setattr(vmrecords, "CHANGE_MARGIN", dt.timedelta(0))
    db, ce = vmdb.db, CES[0]
    ok(db.recordVMs([{"vm_name": f"jdirac-{i:032x}", "ce": ce, "created": T0} for i in range(50)]))
    kept = KeptRecords()
    first = vm_records(client, ce, kept)
    rows = []
    real = client.getVMChanges
    monkeypatch.setattr(client, "getVMChanges", lambda ce, since=None: rows.append(real(ce, since)) or rows[-1])
    assert vm_records(client, ce, kept) == first
    assert ok(rows[-1])["rows"] == []  # nothing changed: nothing read
    ok(db.setVMStates({f"jdirac-{3:032x}": "ACTIVE"}, T0 + dt.timedelta(minutes=1)))
    second = vm_records(client, ce, kept)
    assert [row["vm_name"] for row in ok(rows[-1])["rows"]] == [f"jdirac-{3:032x}"]
    assert second[f"jdirac-{3:032x}"].cloud_state == "ACTIVE"
    assert all(second[name] is first[name] for name in first if name != f"jdirac-{3:032x}")
    assert list(second.items()) == list(full_read(client, ce).items())


def test_a_row_accounted_and_purged_between_two_reads_does_not_linger(vmdb, client, monkeypatch):
    """Purged rows were deleted and accounted; one both accounted and purged since the last
    read is in no change the next read sees: the check (count, stamps) catches it and a full
    read answers."""
    monkeypatch.setattr(vmrecords, "CHANGE_MARGIN", dt.timedelta(0))
    db, ce, name = vmdb.db, CES[0], "jdirac-" + "a" * 32
    ok(db.recordVMs([{"vm_name": name, "ce": ce, "created": T0}, {"vm_name": "jdirac-" + "b" * 32, "ce": ce}]))
    ok(db.markVMsDeleted([name], "pilot done", when=T0 + dt.timedelta(hours=1)))
    kept = KeptRecords()
    assert name in vm_records(client, ce, kept)  # deleted, not accounted yet
    ok(db.markAccounted([name], T0 + dt.timedelta(hours=2)))
    assert ok(db.purgeDeletedVMs(T0 + dt.timedelta(days=2))) == 1
    reads = (client.full_reads, client.incremental_reads)
    records = vm_records(client, ce, kept)
    assert name not in records and list(records) == ["jdirac-" + "b" * 32]
    assert (client.full_reads, client.incremental_reads) == (reads[0] + 1, reads[1] + 1)


def test_a_change_committed_later_than_its_time_is_caught(vmdb, mariadb, client, monkeypatch):
    monkeypatch.setattr(vmrecords, "CHANGE_MARGIN", dt.timedelta(0))
    db, ce, name = vmdb.db, CES[0], "jdirac-" + "c" * 32
    ok(db.recordVMs([{"vm_name": name, "ce": ce, "created": T0}]))
    kept = KeptRecords()
    assert vm_records(client, ce, kept)[name].cloud_state == "BUILD"
    mariadb.execute("UPDATE VMs SET `CloudState` = 'ACTIVE', `Changed` = '2001-01-01' WHERE `VMName` = %s",
                    database=vmdb.dbname, params=(name,))
    assert vm_records(client, ce, kept)[name].cloud_state == "ACTIVE"
    assert client.full_reads == 2


def test_every_write_moves_the_change_time_in_the_databases_clock(vmdb, mariadb):
    db, name = vmdb.db, "jdirac-" + "d" * 32

    def changed():
        return mariadb.execute(f"{UTC_STATEMENT}SELECT `Changed` FROM VMs WHERE `VMName` = %s",
                               database=vmdb.dbname, params=(name,))[0][0]

    ok(db.recordVMs([{"vm_name": name, "ce": CES[0], "created": T0}]))
    times = [changed()]
    for write in (
        lambda: db.setVMStates({name: "ACTIVE"}, T0),
        lambda: db.addHeartbeat(name, T0 + dt.timedelta(minutes=1), "0.5"),
        lambda: db.setShutdownMessage(name, 0, "done"),
        lambda: db.markVMsDeleted([name], "done", when=T0 + dt.timedelta(minutes=2)),
        lambda: db.markAccounted([name], T0 + dt.timedelta(minutes=3)),
    ):
        ok(write())
        times.append(changed())
    assert times == sorted(set(times)) and len(times) == 6  # each write a later time
    now = ok(db.getVMChanges(CES[0]))["now"]
    assert now >= times[-1] and now - times[-1] < dt.timedelta(minutes=1)  # naive UTC, as the rows
    ok(db.setVMStates({name: "ACTIVE"}, T0))  # no value changed: no change
    assert changed() == times[-1]


def test_changes_in_a_non_utc_session_time_zone(vmdb, client, monkeypatch):
    """Changed is a TIMESTAMP, compared in UTC whatever the session's time zone."""
    monkeypatch.setattr(vmrecords, "CHANGE_MARGIN", dt.timedelta(0))
    db, ce, name = vmdb.db, CES[1], "jdirac-" + "e" * 32
    ok(db._update("SET time_zone = '+05:00'"))  # the pooled connection of this thread
    try:
        assert ok(db._query("SELECT @@session.time_zone"))[0][0] == "+05:00"
        ok(db.recordVMs([{"vm_name": name, "ce": ce, "created": T0}]))
        kept = KeptRecords()
        vm_records(client, ce, kept)
        ok(db.setVMStates({name: "ACTIVE"}, T0))
        now = ok(db.getVMChanges(ce))["now"]
        assert abs(now - dt.datetime.now(UTC).replace(tzinfo=None)) < dt.timedelta(minutes=1)  # UTC, not +05:00
        assert [row["vm_name"] for row in ok(db.getVMChanges(ce, now - dt.timedelta(seconds=2)))["rows"]] == [name]
        assert ok(db.getVMChanges(ce, now + dt.timedelta(seconds=1)))["rows"] == []
        assert vm_records(client, ce, kept)[name].cloud_state == "ACTIVE"
        assert client.incremental_reads == 1 and client.full_reads == 1
        assert ok(db._query("SELECT @@session.time_zone"))[0][0] == "+05:00"  # left as it was
    finally:
        ok(db._update("SET time_zone = 'SYSTEM'"))


def test_an_error_makes_the_next_read_a_full_one(vmdb, client, monkeypatch):
    """getVMChanges refused (a VMManager service older than it, the database): this cycle reads
    every row through getVMRows, whose error skips the CE; the next read of changes is a full one."""
    db, ce, name = vmdb.db, CES[0], "jdirac-" + "f" * 32
    ok(db.recordVMs([{"vm_name": name, "ce": ce, "created": T0}]))
    kept = KeptRecords()
    vm_records(client, ce, kept)
    real_changes, real_rows = VMStateClient.getVMChanges, VMStateClient.getVMRows
    monkeypatch.setattr(CountingClient, "getVMChanges", lambda self, ce, since=None: S_ERROR("Unknown method"))
    ok(db.setVMStates({name: "ACTIVE"}, T0))
    assert list(vm_records(client, ce, kept).items()) == list(full_read(client, ce).items())
    assert vm_records(client, ce, kept)[name].cloud_state == "ACTIVE"
    monkeypatch.setattr(CountingClient, "getVMRows", lambda self, ce=None, **query: S_ERROR("VMDB down"))
    with pytest.raises(CENotServedThisCycle, match="VMDB down"):
        vm_records(client, ce, kept)
    monkeypatch.setattr(CountingClient, "getVMChanges", real_changes)
    monkeypatch.setattr(CountingClient, "getVMRows", real_rows)
    asked = []
    monkeypatch.setattr(client, "getVMChanges",
                        lambda ce, since=None: asked.append(since) or real_changes(client, ce, since))
    assert vm_records(client, ce, kept)[name].cloud_state == "ACTIVE"
    assert asked == [None]


def test_a_full_read_every_few_reads(vmdb, client, monkeypatch):
    monkeypatch.setattr(vmrecords, "FULL_READ_EVERY", 3)
    ok(vmdb.db.recordVMs([{"vm_name": "jdirac-" + "1" * 32, "ce": CES[0], "created": T0}]))
    kept = KeptRecords()
    for _ in range(8):
        vm_records(client, CES[0], kept)
    assert (client.full_reads, client.incremental_reads) == (2, 6)  # full, 3 incremental, full, 3


def test_changes_through_the_service(vmdb, client, monkeypatch):
    """getVMChanges across DEncode to the handler: the DB's microseconds come back as they left."""

    class WireService:
        def __getattr__(self, method):
            def remote(*args):
                args = DEncode.decode(DEncode.encode(list(args)))[0]
                reply = getattr(VMManagerHandler, f"export_{method}")(*args)
                return DEncode.decode(DEncode.encode(reply))[0]
            return remote

    monkeypatch.setattr(vmrecords, "CHANGE_MARGIN", dt.timedelta(0))
    monkeypatch.setattr(VMManagerHandler, "log", gLogger, raising=False)
    ok(VMManagerHandler.initializeHandler({}))
    ok(vmdb.db.recordVMs([{"vm_name": "jdirac-" + "2" * 32, "ce": CES[0], "created": T0}]))
    monkeypatch.setattr(client, "_db", None)
    monkeypatch.setattr(client, "_rpc", WireService())
    kept = KeptRecords()
    vm_records(client, CES[0], kept)
    ok(vmdb.db.setVMStates({"jdirac-" + "2" * 32: "ACTIVE"}, T0))
    assert vm_records(client, CES[0], kept)["jdirac-" + "2" * 32].cloud_state == "ACTIVE"
    assert (client.full_reads, client.incremental_reads) == (1, 1)
    assert not client.getVMChanges(CES[0], "yesterday")["OK"]


def test_an_existing_database_gets_the_change_column_and_its_index(mariadb):
    with v010_database(mariadb) as name:
        mariadb.execute("INSERT INTO VMs (`VMName`, `CE`, `Created`) VALUES ('jdirac-old', 'ce', '2026-01-01')",
                        database=name)
        db = vmdb_on(mariadb, name)
        index = mariadb.execute(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'VMs' "
            "AND INDEX_NAME = 'CEChanged' ORDER BY SEQ_IN_INDEX", params=(name,))
        assert index == [("CE",), ("Changed",)]
        (before,) = mariadb.execute(f"{UTC_STATEMENT}SELECT `Changed` FROM VMs", database=name)
        ok(db.setVMStates({"jdirac-old": "ACTIVE"}))
        (after,) = mariadb.execute(f"{UTC_STATEMENT}SELECT `Changed` FROM VMs", database=name)
        assert after[0] > before[0]
        assert [row["vm_name"] for row in ok(db.getVMChanges("ce", before[0]))["rows"]] == ["jdirac-old"]
        vmdb_module.VMDB()  # a restart: idempotent
        assert "CEChanged" in mariadb.execute("SHOW CREATE TABLE VMs", database=name)[0][1]
        assert db.getSchemaVersion()["Value"] == vmdb_module.SCHEMA_VERSION
