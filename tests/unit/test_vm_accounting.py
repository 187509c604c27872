"""VirtualMachine accounting type and APEL individual job records of finished VMs."""

import datetime as dt
import os

import pytest

from JenniferDIRAC.WorkloadManagementSystem.Utilities import APEL

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def finished_vm(name="jdirac-" + "a" * 32, wall=7200, **extra):
    vm = {
        "vm_name": name,
        "vm_id": "8d5e3f2a-1111-2222-3333-444455556666",
        "ce": "cloud.example.org",
        "site": "CLOUD.Example.uk",
        "vo": "belle",
        "profile": "belle-8core",
        "flavor": "m1.xlarge",
        "cores": 8,
        "ram_mb": 16384,
        "created": START - dt.timedelta(minutes=3),
        "started": START,
        "ended": START + dt.timedelta(seconds=wall),
        "deleted": START + dt.timedelta(seconds=wall + 60),
        "end": START + dt.timedelta(seconds=wall),
        "wall_seconds": wall,
    }
    vm.update(extra)
    return vm


def settings(tmp_path=None, **extra):
    return APEL.AccountingSettings(
        fizzle_seconds=600,
        apel_directory=str(tmp_path / "apel") if tmp_path else "",
        hs06_per_core=lambda vm: 12.5,
        site_name=lambda site: {"CLOUD.Example.uk": "UKI-EXAMPLE"}.get(site, site),
        **extra,
    )


def test_type_loads_through_dirac_object_loader():
    from DIRAC.AccountingSystem.Client.Types.BaseAccountingType import BaseAccountingType
    from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader
    from DIRAC.Core.Utilities.Plotting.TypeLoader import TypeLoader

    result = ObjectLoader().loadObject("AccountingSystem.Client.Types.VirtualMachine")
    assert result["OK"], result.get("Message")
    cls = result["Value"]
    assert issubclass(cls, BaseAccountingType)
    assert cls.__module__ == "JenniferDIRAC.AccountingSystem.Client.Types.VirtualMachine"
    # What the Accounting DataStore uses to register every type at start-up.
    assert TypeLoader().getTypes()["VirtualMachine"] is cls
    name, keys, values, _ = cls().getDefinition()
    assert name == "VirtualMachine"
    assert [k for k, _ in keys] == ["Site", "CE", "VO", "Flavor", "Profile", "EndStatus"]
    assert [v for v, _ in values] == ["VMs", "Cores", "WallTime", "CoreWallTime", "NormCoreWallTime"]


def test_dirac_record_figures():
    register = APEL.dirac_accounting_record(finished_vm(), settings())["Value"]
    name, start, end, values = register.getValues()
    assert name == "VirtualMachine"
    assert start == START.replace(tzinfo=None) and end == (START + dt.timedelta(hours=2)).replace(tzinfo=None)
    assert dict(zip(register.fieldsList, values)) == {
        "Site": "CLOUD.Example.uk",
        "CE": "cloud.example.org",
        "VO": "belle",
        "Flavor": "m1.xlarge",
        "Profile": "belle-8core",
        "EndStatus": "Completed",
        "VMs": 1,
        "Cores": 8,
        "WallTime": 7200,
        "CoreWallTime": 57600,
        "NormCoreWallTime": 57600 * 12.5,
    }


@pytest.mark.parametrize(
    "vm, status",
    [
        (finished_vm(wall=300), "Fizzled"),
        (finished_vm(wall=0, started=None, ended=None, end=START), "NeverStarted"),
        (finished_vm(wall=600), "Completed"),
    ],
)
def test_end_status(vm, status):
    register = APEL.dirac_accounting_record(vm, settings())["Value"]
    assert register.getValue("EndStatus")["Value"] == status


def test_apel_record_fields():
    record = APEL.apel_record(finished_vm(), settings())
    text = APEL.format_message([record])
    assert text.startswith("APEL-individual-job-message: v0.3\n")
    (parsed,) = APEL.parse_message(text)
    assert parsed == {
        "Site": "UKI-EXAMPLE",
        "SubmitHost": "cloud.example.org/jenniferdirac",
        "MachineName": "jdirac-" + "a" * 32,
        "LocalJobId": "8d5e3f2a-1111-2222-3333-444455556666",
        "LocalUserId": "jdirac-" + "a" * 32,
        "Queue": "belle-8core",
        "GlobalUserName": "/DC=org/DC=example/DC=cloud",
        "FQAN": "/belle/Role=NULL/Capability=NULL",
        "VO": "belle",
        "WallDuration": "7200",
        "CpuDuration": "7200",
        "Processors": "8",
        "NodeCount": "1",
        "StartTime": str(int(START.timestamp())),
        "EndTime": str(int(START.timestamp()) + 7200),
        "InfrastructureDescription": "APEL-JENNIFERDIRAC",
        "InfrastructureType": "grid",
        "MemoryReal": str(16384 * 1024),
        "MemoryVirtual": str(16384 * 1024),
        "ServiceLevelType": "HEPSPEC",
        "ServiceLevel": "12.5",
    }


def test_fizzled_and_never_started_vms_get_no_apel_record():
    assert APEL.apel_record(finished_vm(wall=599), settings()) is None
    assert APEL.apel_record(finished_vm(wall=0, started=None), settings()) is None
    assert APEL.apel_record(finished_vm(wall=600), settings()) is not None


def test_values_cannot_inject_fields_or_records():
    vm = finished_vm(profile="evil\nSite: FORGED\n%%\nWallDuration: 999999", vo="")
    (parsed,) = APEL.parse_message(APEL.format_message([APEL.apel_record(vm, settings())]))
    assert parsed["Site"] == "UKI-EXAMPLE"
    assert parsed["Queue"] == "evil Site: FORGED %% WallDuration: 999999"
    assert "FQAN" not in parsed and "VO" not in parsed  # empty values are left out


def test_message_written_to_dirq_and_read_back(tmp_path):
    records = [APEL.apel_record(finished_vm(name=f"jdirac-{i:032x}"), settings()) for i in range(3)]
    path = APEL.write_message(records, str(tmp_path / "outgoing"))
    # dirq QueueSimple layout: <dir>/<8 hex>/<14 hex>, no temporary file left.
    rel = os.path.relpath(path, tmp_path / "outgoing").split(os.sep)
    assert len(rel) == 2 and len(rel[0]) == 8 and len(rel[1]) == 14
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    (message,) = APEL.read_messages(str(tmp_path / "outgoing"))
    assert [r["MachineName"] for r in APEL.parse_message(message)] == [f"jdirac-{i:032x}" for i in range(3)]
    assert APEL.write_message([], str(tmp_path / "outgoing")) is None


def test_parse_rejects_truncated_messages():
    text = APEL.format_message([APEL.apel_record(finished_vm(), settings())])
    with pytest.raises(ValueError, match="%%"):
        APEL.parse_message(text.rsplit("%%", 1)[0])
    with pytest.raises(ValueError, match="not an APEL"):
        APEL.parse_message("hello\n")


def test_site_is_the_gocdb_name_from_the_cs():
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(CFG().loadFromBuffer(
        "Resources\n{\n  Sites\n  {\n    CLOUD\n    {\n      CLOUD.Gocdb-Test.uk\n      {\n"
        "        Name = UKI-GOCDB-TEST\n      }\n    }\n  }\n}\n"
    ))
    default = APEL.AccountingSettings()
    record = APEL.apel_record(finished_vm(site="CLOUD.Gocdb-Test.uk"), default)
    assert record.site == "UKI-GOCDB-TEST"
    assert APEL.apel_record(finished_vm(site="CLOUD.NotInCS.uk"), default).site == "CLOUD.NotInCS.uk"
