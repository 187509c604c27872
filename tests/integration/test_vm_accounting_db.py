"""account_finished_vms on VMDB records: DIRAC registers, APEL message, VMs marked accounted."""

import datetime as dt

import pytest
from apel_testkit import JOB_HEADER, SYNC_HEADER, records_of, validate
from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
from JenniferDIRAC.WorkloadManagementSystem.Accounting import APEL

UTC = dt.UTC
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
        {
            "vm_name": name,
            "vm_id": f"uuid-{name}",
            "ce": "ce.example",
            "site": "CLOUD.X.uk",
            "vo": "vo",
            "profile": "p",
            "flavor": "f",
            "cores": 4,
            "ram_mb": 4096,
            "created": T0,
        }
        for name in ("long", "fizzle", "never", "running")
    ]
    assert c.recordVMs(vms)["OK"]
    c.setVMStates(
        {"long": "ACTIVE", "fizzle": "ACTIVE", "running": "ACTIVE"}, when=T0 + dt.timedelta(minutes=2)
    )
    c.setVMStates({"fizzle": "SHUTOFF"}, when=T0 + dt.timedelta(minutes=4))
    c.setVMStates({"long": "SHUTOFF"}, when=T0 + dt.timedelta(hours=3, minutes=2))
    c.markVMsDeleted(["never"], "boot timeout", when=T0 + dt.timedelta(hours=1))
    return c


def test_finished_vms_accounted_once(client, tmp_path, monkeypatch):
    spy = DataStoreSpy()
    monkeypatch.setattr("DIRAC.AccountingSystem.Client.DataStoreClient.gDataStoreClient", spy)
    settings = APEL.AccountingSettings(
        fizzle_seconds=600, apel_directory=str(tmp_path / "apel"), publish_mode=lambda vm: "Jobs"
    )
    records = client.getAccountingRecords()["Value"]
    assert {r["vm_name"] for r in records} == {"long", "fizzle", "never"}
    result = APEL.account_finished_vms(records, settings, client)
    assert result["OK"], result.get("Message")
    assert sorted(result["Value"]["accounted"]) == ["fizzle", "long", "never"]
    assert result["Value"]["apel_records"] == 1
    # DIRAC accounting: every finished VM, with its figures.
    assert len(spy.registers) == 3
    by_status = {values[3][5]: values[3] for values in spy.registers}
    # keys (Site, CE, VO, Flavor, Profile, EndStatus, BenchmarkSource), then the values
    assert by_status["Completed"][6:] == ["CE", 1, 4, 3 * 3600, 4 * 3 * 3600, 4 * 3 * 3600 * 10.0, 0, 0.0]
    assert by_status["Fizzled"][9] == 120
    assert by_status["NeverStarted"][9] == 0
    # APEL: only the long VM.
    (record,) = records_of(settings.apel_directory)
    validate(JOB_HEADER, record)
    (sync,) = records_of(settings.apel_directory, SYNC_HEADER)
    assert sync["NumberOfJobs"] == "1" and sync["Site"] == "CLOUD.X.uk"
    assert record["LocalJobId"] == "uuid-long" and record["WallDuration"] == "10800"
    assert record["StartTime"] == str(int((T0 + dt.timedelta(minutes=2)).timestamp()))
    # Nothing left to account; a second pass writes nothing.
    assert client.getAccountingRecords()["Value"] == []
    assert all(vm["accounted"] for vm in client.getVMs(names=["long", "fizzle", "never"])["Value"])


def test_failed_commit_leaves_vms_for_the_next_cycle(client, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "DIRAC.AccountingSystem.Client.DataStoreClient.gDataStoreClient", DataStoreSpy(fail=True)
    )
    settings = APEL.AccountingSettings(apel_directory=str(tmp_path / "apel"))
    result = APEL.account_finished_vm(client.getAccountingRecords()["Value"][0], settings, client)
    assert not result["OK"] and "DataStore unreachable" in result["Message"]
    assert len(client.getAccountingRecords()["Value"]) == 3
    assert not (tmp_path / "apel").exists()


def test_unwritable_apel_directory_is_an_error(client, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = APEL.AccountingSettings(
        apel_directory=str(blocker / "apel"), send_dirac_accounting=False, publish_mode=lambda vm: "Jobs"
    )
    result = APEL.account_finished_vms(client.getAccountingRecords()["Value"], settings, client)
    assert not result["OK"] and str(blocker) in result["Message"]
    assert len(client.getAccountingRecords()["Value"]) == 3


def test_cpu_seconds_from_the_vms_heartbeats(client, tmp_path, monkeypatch):
    """The VM sends "cpu=<seconds>" after its load; VMDB keeps the last heartbeat; the records
    carry it. A heartbeat of an older VM (load only) gives CPU 0, not the wall time."""
    spy = DataStoreSpy()
    monkeypatch.setattr("DIRAC.AccountingSystem.Client.DataStoreClient.gDataStoreClient", spy)
    assert client.addHeartbeat("long", T0 + dt.timedelta(hours=1), "1.0 0.9 0.8 2/300 4242 cpu=12000")["OK"]
    assert client.addHeartbeat("long", T0 + dt.timedelta(hours=3), "3.9 3.8 3.7 5/300 4250 cpu=39000")["OK"]
    assert client.addHeartbeat("fizzle", T0 + dt.timedelta(minutes=3), "0.1 0.1 0.1 1/200 99")["OK"]
    settings = APEL.AccountingSettings(
        apel_directory=str(tmp_path / "apel"), send_dirac_accounting=True, publish_mode=lambda vm: "Cloud"
    )
    result = APEL.account_finished_vms(client.getAccountingRecords()["Value"], settings, client)
    assert result["OK"], result.get("Message")
    by_status = {values[3][5]: values[3] for values in spy.registers}
    assert by_status["Completed"][12] == 39000  # CPUTime
    assert by_status["Completed"][13] == 39000 * 10.0  # NormCPUTime
    assert by_status["Fizzled"][12] == 0
    (record,) = records_of(settings.apel_directory, "APEL-cloud-message: v0.4")
    assert record["CpuDuration"] == "39000" and record["WallDuration"] == str(3 * 3600)
