"""VMStateClient in direct-DB mode, and the VMManager handler's logic behind DIRAC's wire encoding.

The handler is exercised through its export_ methods with arguments that went through DIRAC's
own JSON and DEncode encodings (what DIPS does to them), against the real MariaDB.
"""

import datetime as dt

import pytest
from DIRAC import gLogger
from DIRAC.Core.Utilities import DEncode, JEncode

from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
from JenniferDIRAC.WorkloadManagementSystem.Service.VMManagerHandler import VMManagerHandler

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


@pytest.fixture
def client(vmdb, monkeypatch):
    # The process-wide VMDB belongs to this test's database.
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    return VMStateClient()


def rec(name, **extra):
    return {"vm_name": name, "ce": "ce.example", "site": "CLOUD.X.uk", "vo": "vo", "cores": 2, "created": T0, **extra}


def test_direct_mode_when_db_configured(vmdb, monkeypatch):
    monkeypatch.setattr(client_module, "_db", None)
    client = VMStateClient()
    assert client.direct
    assert ok(client.getVMs()) == []


def test_service_mode_when_db_not_configured(monkeypatch):
    monkeypatch.setattr(client_module, "_db", None)
    monkeypatch.setattr(client_module, "getDBParameters", lambda name: {"OK": False, "Message": "no"})
    client = VMStateClient()
    assert not client.direct
    with pytest.raises(RuntimeError, match="Databases/VMDB"):
        VMStateClient(mode="db")


def test_client_round_trip_with_aware_times(client):
    ok(client.recordVMs([rec("a"), rec("b")]))
    ok(client.setVMStates({"a": "ACTIVE"}, when=T0 + dt.timedelta(minutes=5)))
    ok(client.setVMStates({"a": "SHUTOFF"}, when=T0 + dt.timedelta(minutes=65)))
    vm = ok(client.getVM("a"))
    assert vm["created"] == T0 and vm["created"].tzinfo is not None
    assert vm["started"] == T0 + dt.timedelta(minutes=5)
    assert [v["vm_name"] for v in ok(client.getVMs(ce="ce.example", states=("SHUTOFF",)))] == ["a"]
    assert not client.getVM("nope")["OK"]
    assert not client.getVMs(colour="red")["OK"]
    ok(client.markVMsDeleted("b", "orphan", when=T0 + dt.timedelta(minutes=10)))
    assert [v["vm_name"] for v in ok(client.getVMs(active_only=True))] == ["a"]
    records = {r["vm_name"]: r for r in ok(client.getAccountingRecords(limit=10))}
    assert records["a"]["wall_seconds"] == 3600 and records["b"]["wall_seconds"] == 0
    assert ok(client.markAccounted(["a", "b"])) == 2
    ok(client.addHeartbeat("a", T0, "0.5"))
    assert ok(client.getHeartbeats("a")) == [(T0, "0.5")]
    ok(client.setShutdownMessage("a", 200, "Success"))
    ok(client.storeLog("a", "console", b"\xff\x00binary"))
    assert ok(client.getLogs("a")) == {"console": b"\xff\x00binary"}
    row = ok(client.setBackoff("ce.example", "", T0, "fizzle"))
    assert row["until"] == T0 and not row["active"]
    assert ok(client.claimProbe("ce.example", "", "a")) is True
    assert ok(client.getBackoffs())[0]["probe_vm"] == "a"
    ok(client.releaseProbe("ce.example"))
    ok(client.clearBackoff("ce.example"))
    assert ok(client.getBackoff("ce.example")) is None
    ok(client.markVMsDeleted(["a"], "done", when=T0))
    assert ok(client.purgeDeletedVMs(T0 + dt.timedelta(days=1))) == 2


def wire(*args, encoding="json"):
    """The arguments as a DIPS service receives them."""
    if encoding == "json":
        return tuple(JEncode.decode(JEncode.encode(list(args)))[0])
    return tuple(DEncode.decode(DEncode.encode(list(args)))[0])


def call(handler, method, *args, encoding="json"):
    """Check the wire types against types_<method>, then call export_<method>."""
    args = wire(*client_module.to_wire(list(args)), encoding=encoding)
    expected = getattr(handler, f"types_{method}")
    assert len(args) >= len(expected)
    for value, types in zip(args, expected):
        assert isinstance(value, tuple(types) if isinstance(types, list) else types), (method, value, types)
    return getattr(handler, f"export_{method}")(*args)


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_handler_on_real_db_through_the_wire(vmdb, encoding, monkeypatch):
    handler = VMManagerHandler
    # What the service framework sets before initializeHandler.
    monkeypatch.setattr(handler, "log", gLogger, raising=False)
    ok(handler.initializeHandler({}))
    assert ok(call(handler, "recordVMs", [rec("h1"), rec("h2")], encoding=encoding)) == 2
    ok(call(handler, "setVMStates", {"h1": {"state": "ERROR", "fault": "boom"}}, T0, encoding=encoding))
    ok(call(handler, "markVMsDeleted", {"h1": "ERROR: boom"}, "", None, encoding=encoding))
    vms = ok(call(handler, "getVMs", {"ce": "ce.example", "active_only": True}, encoding=encoding))
    assert [v["vm_name"] for v in vms] == ["h2"]
    assert not call(handler, "getVMs", {"drop": "table"}, encoding=encoding)["OK"]
    ok(call(handler, "storeLog", "h2", "console", b"\xfe\x00log", encoding=encoding))
    logs = ok(handler.export_getLogs("h2"))
    # What the client receives after the reply crosses the wire.
    (received,) = wire(logs, encoding=encoding)
    assert client_module._bytes(received["console"]) == b"\xfe\x00log"
    ok(call(handler, "setBackoff", "ce.example", "p", T0, "create failed", False, encoding=encoding))
    assert ok(call(handler, "getBackoff", "ce.example", "p", encoding=encoding))["reason"] == "create failed"
    assert ok(call(handler, "claimProbe", "ce.example", "p", "h2", encoding=encoding)) is True
    ok(call(handler, "addHeartbeat", "h2", T0, "1.0", encoding=encoding))
    ok(call(handler, "setShutdownMessage", "h2", 300, "Nothing to do", encoding=encoding))
    assert ok(call(handler, "markAccounted", ["h1"], None, encoding=encoding)) == 1
    (vm,) = wire(ok(handler.export_getVMs({"names": ["h2"]})), encoding=encoding)[0]
    assert (vm["shutdown_code"], vm["last_heartbeat"]) == (300, T0.replace(tzinfo=None))


def test_handler_authorization_in_config_template():
    from importlib.resources import files

    from diraccfg import CFG

    text = files("JenniferDIRAC.WorkloadManagementSystem").joinpath("ConfigTemplate.cfg").read_text()
    service = CFG().loadFromBuffer(text)["Services"]["VMManager"]
    assert service["Port"] == "9177"
    auth = service["Authorization"]
    assert "authenticated" not in auth["Default"]
    assert {p.strip() for p in auth["Default"].split(",")} == {"Operator", "TrustedHost"}
    exported = {name[len("export_"):] for name in dir(VMManagerHandler) if name.startswith("export_")}
    assert {"recordVMs", "getVMs", "setBackoff", "storeLog", "markAccounted"} <= exported


def test_process_wide_db_follows_the_configured_database(vmdb, mariadb, monkeypatch):
    from DIRAC import gConfig
    from diraccfg import CFG

    monkeypatch.setattr(client_module, "_db", None)
    first = VMStateClient()._db
    assert first.dbName == vmdb.dbname and VMStateClient()._db is first  # cached
    mariadb.create_database("VMDB_other_cs")
    try:
        gConfig.loadCFG(CFG().loadFromBuffer(
            "Systems\n{\n  WorkloadManagement\n  {\n    Databases\n    {\n      VMDB\n      {\n"
            "        DBName = VMDB_other_cs\n      }\n    }\n  }\n}\n"
        ))
        assert VMStateClient()._db.dbName == "VMDB_other_cs"
    finally:
        gConfig.loadCFG(CFG().loadFromBuffer(vmdb.cfg))
        mariadb.drop_database("VMDB_other_cs")
    assert VMStateClient()._db.dbName == vmdb.dbname


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_capacity_memory_through_the_wire(vmdb, encoding, monkeypatch):
    """VMCapacity through the VMManager service, as a CE on the SiteDirector's host reaches it."""
    handler = VMManagerHandler
    monkeypatch.setattr(handler, "log", gLogger, raising=False)
    ok(handler.initializeHandler({}))
    ok(call(handler, "setNoCapacity", "a" * 64, "name:m1.large", "nova", 300, "No valid host", encoding=encoding))
    (row,) = wire(ok(call(handler, "getNoCapacity", "a" * 64, encoding=encoding)), encoding=encoding)[0]
    assert (row["flavor"], row["zone"], row["reason"]) == ("name:m1.large", "nova", "No valid host")
    assert 290 <= row["seconds"] <= 300
    assert not call(handler, "setNoCapacity", "a" * 64, "name:m1.large", "nova", 10**6, encoding=encoding)["OK"]


class WireService:
    """The client's RPC end: each call crosses DIRAC's DEncode both ways to the handler."""

    def __init__(self, handler):
        self.handler = handler

    def __getattr__(self, method):
        def remote(*args):
            (reply,) = wire(getattr(self.handler, f"export_{method}")(*wire(*args, encoding="dencode")),
                            encoding="dencode")
            return reply
        return remote


@pytest.mark.parametrize("direct", [True, False], ids=["in-process", "through-the-service"])
def test_vm_rows_are_getvms_rows_with_naive_utc_times(client, direct, monkeypatch):
    ok(client.recordVMs([rec("a"), rec("b")]))
    ok(client.setVMStates({"a": "ACTIVE"}, when=T0 + dt.timedelta(minutes=5)))
    ok(client.markVMsDeleted("b", "orphan", when=T0 + dt.timedelta(minutes=10)))
    if not direct:
        monkeypatch.setattr(VMManagerHandler, "log", gLogger, raising=False)
        ok(VMManagerHandler.initializeHandler({}))
        monkeypatch.setattr(client, "_db", None)
        monkeypatch.setattr(client, "_rpc", WireService(VMManagerHandler))
    (row,) = ok(client.getVMRows(ce="ce.example", active_only=True, names={"a", "b"}))
    (aware,) = ok(client.getVMs(ce="ce.example", active_only=True))
    assert row["vm_name"] == aware["vm_name"] == "a"
    assert row["started"] == (T0 + dt.timedelta(minutes=5)).replace(tzinfo=None)
    assert aware["started"] == T0 + dt.timedelta(minutes=5) and aware["started"].tzinfo is not None
    assert {k: v for k, v in row.items() if not isinstance(v, dt.datetime)} == {
        k: v for k, v in aware.items() if not isinstance(v, dt.datetime)}
    assert "colour" in client.getVMRows(colour="red")["Message"]
