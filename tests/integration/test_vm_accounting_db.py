"""account_finished_vms on VMDB records: DIRAC registers, APEL message, VMs marked accounted."""

import datetime as dt

import pytest
from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
from JenniferDIRAC.WorkloadManagementSystem.Utilities import APEL

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


class DataStoreSpy:
    """Stands in for DIRAC's DataStore client at the edge: keeps what would be sent."""

    def __init__(self, fail=False):
        self.registers, self.fail = [], fail

    def addRegister(self, register):
        self.registers.append(register.getValues())
        return S_OK()

    def commit(self):
        return S_ERROR("DataStore unreachable") if self.fail else S_OK(len(self.registers))


@pytest.fixture
def client(vmdb, monkeypatch):
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    c = VMStateClient()
    vms = [
        {"vm_name": name, "vm_id": f"uuid-{name}", "ce": "ce.example", "site": "CLOUD.X.uk", "vo": "vo",
         "profile": "p", "flavor": "f", "cores": 4, "ram_mb": 4096, "created": T0}
        for name in ("long", "fizzle", "never", "running")
    ]
    assert c.recordVMs(vms)["OK"]
    c.setVMStates({"long": "ACTIVE", "fizzle": "ACTIVE", "running": "ACTIVE"}, when=T0 + dt.timedelta(minutes=2))
    c.setVMStates({"fizzle": "SHUTOFF"}, when=T0 + dt.timedelta(minutes=4))
    c.setVMStates({"long": "SHUTOFF"}, when=T0 + dt.timedelta(hours=3, minutes=2))
    c.markVMsDeleted(["never"], "boot timeout", when=T0 + dt.timedelta(hours=1))
    return c


def test_finished_vms_accounted_once(client, tmp_path, monkeypatch):
    spy = DataStoreSpy()
    monkeypatch.setattr("DIRAC.AccountingSystem.Client.DataStoreClient.gDataStoreClient", spy)
    settings = APEL.AccountingSettings(fizzle_seconds=600, apel_directory=str(tmp_path / "apel"))
    records = client.getAccountingRecords()["Value"]
    assert {r["vm_name"] for r in records} == {"long", "fizzle", "never"}
    result = APEL.account_finished_vms(records, settings, client)
    assert result["OK"], result.get("Message")
    assert sorted(result["Value"]["accounted"]) == ["fizzle", "long", "never"]
    assert result["Value"]["apel_records"] == 1
    # DIRAC accounting: every finished VM, with its figures.
    assert len(spy.registers) == 3
    by_status = {values[3][5]: values[3] for values in spy.registers}
    assert by_status["Completed"][6:] == [1, 4, 3 * 3600, 4 * 3 * 3600, 4 * 3 * 3600 * 10.0]
    assert by_status["Fizzled"][8] == 120
    assert by_status["NeverStarted"][8] == 0
    # APEL: only the long VM.
    (message,) = APEL.read_messages(settings.apel_directory)
    (record,) = APEL.parse_message(message)
    assert record["LocalJobId"] == "uuid-long" and record["WallDuration"] == "10800"
    assert record["StartTime"] == str(int((T0 + dt.timedelta(minutes=2)).timestamp()))
    # Nothing left to account; a second pass writes nothing.
    assert client.getAccountingRecords()["Value"] == []
    assert all(vm["accounted"] for vm in client.getVMs(names=["long", "fizzle", "never"])["Value"])


def test_failed_commit_leaves_vms_for_the_next_cycle(client, tmp_path, monkeypatch):
    monkeypatch.setattr("DIRAC.AccountingSystem.Client.DataStoreClient.gDataStoreClient", DataStoreSpy(fail=True))
    settings = APEL.AccountingSettings(apel_directory=str(tmp_path / "apel"))
    result = APEL.account_finished_vm(client.getAccountingRecords()["Value"][0], settings, client)
    assert not result["OK"] and "DataStore unreachable" in result["Message"]
    assert len(client.getAccountingRecords()["Value"]) == 3
    assert not (tmp_path / "apel").exists()


def test_unwritable_apel_directory_is_an_error(client, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = APEL.AccountingSettings(apel_directory=str(blocker / "apel"), send_dirac_accounting=False)
    result = APEL.account_finished_vms(client.getAccountingRecords()["Value"], settings, client)
    assert not result["OK"] and str(blocker) in result["Message"]
    assert len(client.getAccountingRecords()["Value"]) == 3
