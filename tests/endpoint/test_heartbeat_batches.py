"""Heartbeats are written to VMDB in batches (VMEndpointServer/heartbeats.py), on the real MariaDB,
over real HTTP: one INSERT per batch, every accepted heartbeat stored, a stop writes the rest."""

import datetime as dt
import math
import signal
import types

import pytest
import requests
from waiting import wait_until

from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.heartbeats import (
    BufferFull,
    HeartbeatBatching,
    HeartbeatBuffer,
)
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import StoreError, VMStateStore

SECRET = b"heartbeat-batch-test-secret-0123456789"


def com_insert(db) -> int:
    """INSERT statements the server has run (MariaDB's own counter)."""
    result = db._query("SHOW GLOBAL STATUS LIKE 'Com_insert'")
    assert result["OK"], result
    return int(result["Value"][0][1])


def stored_heartbeats(db, names) -> dict:
    return {name: len(db.getHeartbeats(name)["Value"]) for name in names}


class OutageStore:
    """The real store, whose batch writes fail while `down` (the database unreachable)."""

    def __init__(self, store):
        self.store = store
        self.down = True
        self.refused_batches = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_heartbeats(self, heartbeats):
        if self.down:
            self.refused_batches += 1
            raise StoreError("database unreachable")
        self.store.add_heartbeats(heartbeats)


@pytest.fixture
def batched_endpoint(vmdb, make_vm_record):
    """batched_endpoint(batching, store=None) -> a served endpoint whose heartbeats are buffered."""
    started = []

    def make(batching, store=None, retry_seconds=5.0):
        authority = TokenAuthority([SECRET])
        store = store or VMStateStore(vmdb.db)
        buffer = HeartbeatBuffer(store, batching, retry_seconds=retry_seconds)
        app = VMEndpointApp(authority, store, EndpointLimits(min_heartbeat_seconds=10), heartbeats=buffer)
        server = EndpointServer(app, "127.0.0.1", 0)
        server.start()
        session = requests.Session()
        started.append((server, buffer, session))

        def register(names):
            assert vmdb.db.recordVMs([make_vm_record(name) for name in names])["OK"]
            return {name: authority.issue(name, 3600) for name in names}

        def heartbeat(name, token):
            return session.post(f"{server.url}/vm/v1/{name}/heartbeat", data=b"0.5 0.4 0.3 1/99 42",
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)

        return types.SimpleNamespace(server=server, buffer=buffer, register=register, heartbeat=heartbeat,
                                     db=vmdb.db)

    try:
        yield make
    finally:
        for server, buffer, session in started:
            session.close()
            server.stop()
            buffer.close(timeout=1)


def test_heartbeats_over_http_take_one_insert_per_batch(batched_endpoint):
    endpoint = batched_endpoint(HeartbeatBatching(batch_rows=10, flush_seconds=3600, max_buffered=1000))
    names = [f"jdirac-hbbatch-{i:03d}" for i in range(95)]
    tokens = endpoint.register(names)
    before = com_insert(endpoint.db)
    for name in names:
        assert endpoint.heartbeat(name, tokens[name]).status_code == 204
    # Batches of 10 are written as they fill; the last 5 wait for their time (an hour) or a stop.
    wait_until(lambda: len(endpoint.buffer) == 5, 60, "the full batches written")
    assert sum(stored_heartbeats(endpoint.db, names).values()) == 90
    endpoint.server.stop()  # the app's shutdown writes what is buffered
    assert len(endpoint.buffer) == 0
    inserts = com_insert(endpoint.db) - before
    assert inserts <= math.ceil(len(names) / 10) + 1, f"{inserts} INSERTs for {len(names)} heartbeats"
    assert stored_heartbeats(endpoint.db, names) == {name: 1 for name in names}
    records = endpoint.db.getVMs(names=names)["Value"]
    assert all(r["last_heartbeat"] is not None and r["heartbeat_load"] == "0.5 0.4 0.3 1/99 42" for r in records)


def test_a_lone_heartbeat_is_written_after_the_flush_time(batched_endpoint):
    endpoint = batched_endpoint(HeartbeatBatching(batch_rows=100, flush_seconds=0.2, max_buffered=100))
    tokens = endpoint.register(["jdirac-hblone"])
    assert endpoint.heartbeat("jdirac-hblone", tokens["jdirac-hblone"]).status_code == 204
    wait_until(lambda: len(endpoint.buffer) == 0, 30, "the lone heartbeat written by the time-based flush")
    assert endpoint.buffer.flushes == 1
    assert stored_heartbeats(endpoint.db, ["jdirac-hblone"]) == {"jdirac-hblone": 1}


def test_a_shutdown_message_is_stored_after_the_vms_buffered_heartbeats(batched_endpoint):
    """Whoever reads a VM's shutdown message also reads the heartbeats answered before it: the
    lifecycle tells a VM that never reported ("no heartbeat") from one that ran."""
    endpoint = batched_endpoint(HeartbeatBatching(batch_rows=100, flush_seconds=3600, max_buffered=100))
    tokens = endpoint.register(["jdirac-hbthenbye", "jdirac-hbother"])
    for name in tokens:
        assert endpoint.heartbeat(name, tokens[name]).status_code == 204
    assert len(endpoint.buffer) == 2  # the flush is an hour away
    response = requests.put(f"{endpoint.server.url}/vm/v1/jdirac-hbthenbye/shutdown_message", data=b"200 done",
                            headers={"Authorization": f"Bearer {tokens['jdirac-hbthenbye']}"}, timeout=30)
    assert response.status_code == 204, response.text
    (record,) = endpoint.db.getVMs(names=["jdirac-hbthenbye"])["Value"]
    assert record["shutdown_code"] == 200 and record["last_heartbeat"] is not None, record
    assert len(endpoint.buffer) == 0


def test_a_deleted_vm_gets_410_and_nothing_is_buffered(batched_endpoint):
    endpoint = batched_endpoint(HeartbeatBatching(batch_rows=50, flush_seconds=3600, max_buffered=100))
    tokens = endpoint.register(["jdirac-hbgone", "jdirac-hbalive"])
    assert endpoint.db.markVMsDeleted(["jdirac-hbgone"], "test")["OK"]
    response = endpoint.heartbeat("jdirac-hbgone", tokens["jdirac-hbgone"])
    assert response.status_code == 410 and "deleted" in response.text
    assert endpoint.heartbeat("jdirac-hbalive", tokens["jdirac-hbalive"]).status_code == 204
    assert len(endpoint.buffer) == 1
    endpoint.buffer.close()
    assert stored_heartbeats(endpoint.db, ["jdirac-hbgone", "jdirac-hbalive"]) == {"jdirac-hbgone": 0,
                                                                                   "jdirac-hbalive": 1}


def test_a_full_buffer_refuses_with_503_and_loses_nothing_accepted(batched_endpoint, vmdb):
    store = OutageStore(VMStateStore(vmdb.db))
    endpoint = batched_endpoint(HeartbeatBatching(batch_rows=4, flush_seconds=0.05, max_buffered=8), store=store,
                                retry_seconds=0.05)
    names = [f"jdirac-hbfull-{i}" for i in range(10)]
    tokens = endpoint.register(names)
    answers = [endpoint.heartbeat(name, tokens[name]) for name in names]
    assert [a.status_code for a in answers] == [204] * 8 + [503] * 2
    assert answers[-1].headers["Retry-After"] == "30"
    wait_until(lambda: store.refused_batches >= 2, 30, "the writer retrying while the database is down")
    assert sum(stored_heartbeats(vmdb.db, names).values()) == 0
    store.down = False
    wait_until(lambda: len(endpoint.buffer) == 0, 30, "the buffer written once the database is back")
    assert stored_heartbeats(vmdb.db, names) == {name: 1 if i < 8 else 0 for i, name in enumerate(names)}


class OneBatchStore(OutageStore):
    """An OutageStore that, once up, takes one batch and is down again."""

    def add_heartbeats(self, heartbeats):
        super().add_heartbeats(heartbeats)
        self.down = True


def test_the_buffer_holds_a_vm_until_its_last_buffered_heartbeat_is_written(vmdb, make_vm_record):
    names = ["jdirac-hbheld-a", "jdirac-hbheld-b", "jdirac-hbheld-c"]
    assert vmdb.db.recordVMs([make_vm_record(name) for name in names])["OK"]
    a, b, c = names
    store = OneBatchStore(VMStateStore(vmdb.db))
    buffer = HeartbeatBuffer(store, HeartbeatBatching(batch_rows=2, flush_seconds=3600, max_buffered=3),
                             retry_seconds=3600)
    try:
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        for name in (a, b):
            buffer.add(name, now, "1.0")
        wait_until(lambda: store.refused_batches == 1, 30, "the writer's first batch refused")
        buffer.add(a, now, "2.0")
        with pytest.raises(BufferFull):
            buffer.add(c, now, "1.0")  # refused: not held
        assert [buffer.holds(name) for name in names] == [True, True, False]

        store.down = False
        assert buffer.flush() is False  # [a, b] written, then [a] refused
        assert [buffer.holds(name) for name in names] == [True, False, False]
        store.down = False
        assert buffer.flush() is True
        assert [buffer.holds(name) for name in names] == [False, False, False]
    finally:
        buffer.close(timeout=1)
    assert stored_heartbeats(vmdb.db, names) == {a: 2, b: 1, c: 0}


def test_bad_batching_options_name_the_option():
    with pytest.raises(ValueError, match="HeartbeatBufferRows"):
        HeartbeatBatching(batch_rows=100, max_buffered=10)
    with pytest.raises(ValueError, match="HeartbeatBatchRows"):
        HeartbeatBatching(batch_rows=0)


def test_the_agent_writes_its_buffer_when_stopped_with_sigterm(tmp_path, vmdb, make_vm_record, agent_tools):
    agent = agent_tools.endpoint_agent(tmp_path, vmdb.cfg, PollingTime=3600, HeartbeatBatchRows=1000,
                                       HeartbeatFlushMilliseconds=3600000)
    names = [f"jdirac-hbstop-{i}" for i in range(12)]
    assert vmdb.db.recordVMs([make_vm_record(name) for name in names])["OK"]
    authority = TokenAuthority.from_secret_file(agent.secret)
    proc, log = agent_tools.start_agent(tmp_path, agent.cfg, "-o", "MaxCycles=0")
    try:
        agent_tools.wait_serving(proc, log, agent.url)
        for name in names:
            response = requests.post(f"{agent.url}/vm/v1/{name}/heartbeat", data=b"1.0",
                                     headers={"Authorization": f"Bearer {authority.issue(name, 600)}"}, timeout=10)
            assert response.status_code == 204
        # Neither the batch size nor its time is reached: all twelve are still in the buffer.
        assert sum(stored_heartbeats(vmdb.db, names).values()) == 0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        agent_tools.stop(proc)
    assert stored_heartbeats(vmdb.db, names) == {name: 1 for name in names}, log.read_text()[-3000:]
    assert "VMEndpoint heartbeats written" in log.read_text()
