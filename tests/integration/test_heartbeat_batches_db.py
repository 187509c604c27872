"""VMDB.addHeartbeats, directly and through the VMManager service's wire (JSON and DEncode):
three statements per batch whatever its size, the newest heartbeat per VM in VMs, the last
MaxHeartbeats per VM kept."""

import datetime as dt

import pytest
from DIRAC import gLogger
from test_vmstate_client import T0, call, ok, rec

from JenniferDIRAC.WorkloadManagementSystem.Service.VMManagerHandler import VMManagerHandler


def statements(db) -> int:
    rows = db._query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_insert', 'Com_update', "
                     "'Com_update_multi', 'Com_delete')")["Value"]
    return sum(int(value) for _, value in rows)


def test_a_batch_is_three_statements_and_keeps_the_last_heartbeats(vmdb):
    db = vmdb.db
    db.maxHeartbeats = 3
    assert ok(db.recordVMs([rec("b1"), rec("b2")])) == 2
    batch = [(name, T0 + dt.timedelta(minutes=i), f"load {name} {i}") for i in range(5) for name in ("b1", "b2")]
    before = statements(db)
    assert ok(db.addHeartbeats(batch)) == 10
    assert statements(db) - before == 3
    for name in ("b1", "b2"):
        assert ok(db.getHeartbeats(name)) == [(T0.replace(tzinfo=None) + dt.timedelta(minutes=i), f"load {name} {i}")
                                              for i in (2, 3, 4)]
    (vm,) = ok(db.getVMs(names=["b1"]))
    assert vm["last_heartbeat"] == T0.replace(tzinfo=None) + dt.timedelta(minutes=4)
    assert vm["heartbeat_load"] == "load b1 4"
    # an older heartbeat arriving late does not move LastHeartbeat back
    ok(db.addHeartbeats([("b1", T0, "late")]))
    assert ok(db.getVMs(names=["b1"]))[0]["last_heartbeat"] == T0.replace(tzinfo=None) + dt.timedelta(minutes=4)


def test_bad_batches_are_refused_naming_the_field(vmdb):
    assert "VM name" in vmdb.db.addHeartbeats([("", T0, "x")])["Message"]
    assert "(vm_name, when, load)" in vmdb.db.addHeartbeats([("b1", T0)])["Message"]
    assert ok(vmdb.db.addHeartbeats([])) == 0


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_add_heartbeats_through_the_wire(vmdb, encoding, monkeypatch):
    monkeypatch.setattr(VMManagerHandler, "log", gLogger, raising=False)
    ok(VMManagerHandler.initializeHandler({}))
    assert ok(call(VMManagerHandler, "recordVMs", [rec("w1")], encoding=encoding)) == 1
    rows = [["w1", T0, "0.1"], ["w1", T0 + dt.timedelta(seconds=30), "0.2"]]
    assert ok(call(VMManagerHandler, "addHeartbeats", rows, encoding=encoding)) == 2
    assert [load for _, load in ok(vmdb.db.getHeartbeats("w1"))] == ["0.1", "0.2"]
