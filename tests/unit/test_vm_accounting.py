"""VirtualMachine accounting type and APEL individual job records of finished VMs."""

import datetime as dt
import os

import pytest
from apel_testkit import (
    CLOUD_HEADER,
    JOB_HEADER,
    SYNC_HEADER,
    parse_message,
    read_messages,
    split_message,
    validate,
)

from JenniferDIRAC.WorkloadManagementSystem.Accounting import APEL

UTC = dt.UTC
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
        "cpu_seconds": int(wall * 8 * 0.9),
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
    assert [k for k, _ in keys] == ["Site", "CE", "VO", "Flavor", "Profile", "EndStatus", "BenchmarkSource"]
    assert [v for v, _ in values] == [
        "VMs",
        "Cores",
        "WallTime",
        "CoreWallTime",
        "NormCoreWallTime",
        "CPUTime",
        "NormCPUTime",
    ]


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
        "BenchmarkSource": "CE",
        "VMs": 1,
        "Cores": 8,
        "WallTime": 7200,
        "CoreWallTime": 57600,
        "NormCoreWallTime": 57600 * 12.5,
        "CPUTime": 51840,
        "NormCPUTime": 51840 * 12.5,
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
    (parsed,) = parse_message(text)
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
        "CpuDuration": "51840",
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
    (parsed,) = parse_message(APEL.format_message([APEL.apel_record(vm, settings())]))
    assert parsed["Site"] == "UKI-EXAMPLE"
    assert parsed["Queue"] == "evil Site: FORGED % WallDuration: 999999"
    assert "FQAN" not in parsed and "VO" not in parsed  # empty values are left out


def test_message_written_to_dirq_and_read_back(tmp_path):
    records = [APEL.apel_record(finished_vm(name=f"jdirac-{i:032x}"), settings()) for i in range(3)]
    path = APEL.write_message(records, str(tmp_path / "outgoing"))
    # dirq QueueSimple layout: <dir>/<8 hex>/<14 hex>, no temporary file left.
    rel = os.path.relpath(path, tmp_path / "outgoing").split(os.sep)
    assert len(rel) == 2 and len(rel[0]) == 8 and len(rel[1]) == 14
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    (message,) = read_messages(str(tmp_path / "outgoing"))
    assert [r["MachineName"] for r in parse_message(message)] == [f"jdirac-{i:032x}" for i in range(3)]
    assert APEL.write_message([], str(tmp_path / "outgoing")) is None


def test_site_is_the_gocdb_name_from_the_cs():
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(
        CFG().loadFromBuffer(
            "Resources\n{\n  Sites\n  {\n    CLOUD\n    {\n      CLOUD.Gocdb-Test.uk\n      {\n"
            "        Name = UKI-GOCDB-TEST\n      }\n    }\n  }\n}\n"
        )
    )
    default = APEL.AccountingSettings()
    record = APEL.apel_record(finished_vm(site="CLOUD.Gocdb-Test.uk"), default)
    assert record.site == "UKI-GOCDB-TEST"
    assert APEL.apel_record(finished_vm(site="CLOUD.NotInCS.uk"), default).site == "CLOUD.NotInCS.uk"


# --- what each CE publishes -------------------------------------------------------------------
def load_cs(text):
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(CFG().loadFromBuffer(text))


PUBLISH_CS = """
Resources
{
  Sites
  {
    CLOUD
    {
      CLOUD.Private.uk
      {
        ApelPublish = Jobs
        CEs
        {
          cloud.private.uk
          {
          }
          cloud.nopublish.uk
          {
            ApelPublish = none
          }
        }
      }
      CLOUD.Provider.it
      {
        CEs
        {
          cloud.provider.it
          {
            ApelPublish = Cloud
          }
          cloud.bad.it
          {
            ApelPublish = yes
          }
        }
      }
    }
  }
}
"""


@pytest.mark.parametrize(
    "site, ce, mode",
    [
        ("CLOUD.Private.uk", "cloud.private.uk", "Jobs"),  # from the site
        ("CLOUD.Private.uk", "cloud.nopublish.uk", "None"),  # the CE overrides its site
        ("CLOUD.Provider.it", "cloud.provider.it", "Cloud"),
        ("CLOUD.FedCloud.eu", "fedcloud.example.eu", "None"),  # nothing configured: never double count
    ],
)
def test_publish_mode_per_ce_or_site(site, ce, mode):
    load_cs(PUBLISH_CS)
    assert APEL.publish_mode_from_cs({"site": site, "ce": ce}) == mode


def test_bad_publish_mode_names_the_option(tmp_path):
    load_cs(PUBLISH_CS)
    with pytest.raises(ValueError, match="CEs/cloud.bad.it/ApelPublish.*None, Jobs, Cloud"):
        APEL.publish_mode_from_cs({"site": "CLOUD.Provider.it", "ce": "cloud.bad.it"})
    vm = finished_vm(site="CLOUD.Provider.it", ce="cloud.bad.it")
    result = APEL.write_apel([vm], APEL.AccountingSettings(apel_directory=str(tmp_path / "apel")))
    assert not result["OK"] and "ApelPublish" in result["Message"]


def test_default_publishes_nothing(tmp_path):
    settings = APEL.AccountingSettings(apel_directory=str(tmp_path / "apel"), site_name=lambda s: s)
    result = APEL.write_apel([finished_vm(site="CLOUD.Unconfigured.eu")], settings)
    assert result["OK"] and result["Value"] == {"paths": [], "records": 0}
    assert not (tmp_path / "apel").exists()


def _mode_settings(tmp_path, mode, **extra):
    return settings(tmp_path, publish_mode=lambda vm: mode, **extra)


def test_every_job_and_sync_message_passes_apel_rules(tmp_path):
    vms = [finished_vm(name=f"jdirac-{i:032x}", wall=3600 + i) for i in range(3)]
    result = APEL.write_apel(vms, _mode_settings(tmp_path, "Jobs"))
    assert result["OK"] and result["Value"]["records"] == 3
    kinds = [split_message(m) for m in read_messages(str(tmp_path / "apel"))]
    assert [k for k, _ in kinds] == [JOB_HEADER, SYNC_HEADER]
    for header, records in kinds:
        for record in records:
            validate(header, record)
    (sync,) = kinds[1][1]
    assert sync == {
        "Site": "UKI-EXAMPLE",
        "SubmitHost": "cloud.example.org/jenniferdirac",
        "NumberOfJobs": "3",
        "Month": str(START.month),
        "Year": str(START.year),
    }


def test_sync_counts_grow_across_cycles_per_site_and_month(tmp_path):
    mode = _mode_settings(tmp_path, "Jobs")
    later = START + dt.timedelta(days=40)  # another month
    APEL.write_apel([finished_vm(name="jdirac-" + "1" * 32)], mode)
    APEL.write_apel(
        [
            finished_vm(name="jdirac-" + "2" * 32),
            finished_vm(name="jdirac-" + "3" * 32, started=later, end=later + dt.timedelta(hours=2)),
        ],
        mode,
    )
    messages = [split_message(m) for m in read_messages(str(tmp_path / "apel"))]
    syncs = [r for header, records in messages if header == SYNC_HEADER for r in records]
    assert [(s["Month"], s["NumberOfJobs"]) for s in syncs] == [
        (str(START.month), "1"),
        (str(START.month), "2"),
        (str(later.month), "1"),
    ]
    assert os.path.exists(APEL.sync_counts_path(str(tmp_path / "apel")))


def test_cloud_record_v04_field_by_field(tmp_path):
    vm = finished_vm()
    result = APEL.write_apel([vm], _mode_settings(tmp_path, "Cloud"))
    assert result["OK"] and result["Value"]["records"] == 1
    (message,) = read_messages(str(tmp_path / "apel"))  # no sync records for cloud records
    assert message.startswith("APEL-cloud-message: v0.4\n")
    (record,) = parse_message(message, CLOUD_HEADER)
    validate(CLOUD_HEADER, record)
    from JenniferDIRAC import __version__

    assert record == {
        "VMUUID": "8d5e3f2a-1111-2222-3333-444455556666",
        "SiteName": "UKI-EXAMPLE",
        "CloudComputeService": "cloud.example.org",
        "MachineName": "jdirac-" + "a" * 32,
        "LocalUserId": "belle",
        "LocalGroupId": "belle",
        "GlobalUserName": "/DC=org/DC=example/DC=cloud",
        "FQAN": "/belle/Role=NULL/Capability=NULL",
        "Status": "completed",
        "StartTime": str(int(START.timestamp())),
        "EndTime": str(int(START.timestamp()) + 7200),
        "WallDuration": "7200",
        "CpuDuration": "51840",
        "CpuCount": "8",
        "PublicIPCount": "0",
        "Memory": "16384",  # MB, as cASO
        "Disk": "0",
        "BenchmarkType": "HEPSPEC06",
        "Benchmark": "12.5",
        "CloudType": f"jenniferdirac/{__version__}",
    }


# --- benchmark and CPU time ------------------------------------------------------------------
@pytest.mark.parametrize(
    "properties, slt, cloud_type, value, source",
    [
        (
            {"accounting:benchmark_name": "HS06", "accounting:benchmark_value": "11.25"},
            "HEPSPEC",
            "HEPSPEC06",
            11.25,
            "Flavor",
        ),
        (
            {"accounting:benchmark_name": "HS23", "accounting:benchmark_value": "14"},
            "HEPscore23",
            "HEPscore23",
            14.0,
            "Flavor",
        ),
        ({}, "HEPSPEC", "HEPSPEC06", 12.5, "CE"),
        (
            {"accounting:benchmark_name": "HS06", "accounting:benchmark_value": "-3"},
            "HEPSPEC",
            "HEPSPEC06",
            12.5,
            "CE",
        ),
        (
            {"accounting:benchmark_name": "SPECint", "accounting:benchmark_value": "9"},
            "HEPSPEC",
            "HEPSPEC06",
            12.5,
            "CE",
        ),
    ],
)
def test_benchmark_from_the_flavor_else_the_ce(properties, slt, cloud_type, value, source, tmp_path):
    mode = settings(flavor_properties=lambda vm: properties)
    record = APEL.apel_record(finished_vm(), mode)
    assert (record.service_level_type, record.service_level) == (slt, value)
    validate(JOB_HEADER, parse_message(APEL.format_message([record]))[0])
    cloud = APEL.cloud_record(finished_vm(), mode)
    assert (cloud.benchmark_type, cloud.benchmark) == (cloud_type, value)
    register = APEL.dirac_accounting_record(finished_vm(), mode)["Value"]
    assert register.getValue("BenchmarkSource")["Value"] == source
    assert register.getValue("NormCPUTime")["Value"] == pytest.approx(51840 * value)


@pytest.mark.parametrize(
    "properties, message",
    [
        ({"accounting:benchmark_name": "HS06"}, "benchmark_value = '' is not a number"),
        ({"accounting:benchmark_name": "HS06", "accounting:benchmark_value": "nan"}, "positive"),
        ({"accounting:benchmark_value": "10"}, "benchmark_name = ''"),
    ],
)
def test_bad_flavor_benchmark_names_the_property(properties, message):
    with pytest.raises(ValueError, match=message):
        APEL.flavor_benchmark(properties)


@pytest.mark.parametrize(
    "reported, expected",
    [
        (51840, 51840),  # what the VM's kernel counted
        (None, 0),  # never reported: unknown, not the wall time
        (10**9, 7200 * 8),  # a VM cannot use more than cores x wall
        (-5, 0),
        ("lots", 0),
    ],
)
def test_cpu_time_is_what_the_vm_reported(reported, expected):
    vm = finished_vm(cpu_seconds=reported)
    assert APEL.apel_record(vm, settings()).cpu_duration == expected
    assert APEL.dirac_accounting_record(vm, settings())["Value"].getValue("CPUTime")["Value"] == expected


def test_type_rejects_more_cpu_than_cores_times_wall():
    from JenniferDIRAC.AccountingSystem.Client.Types.VirtualMachine import VirtualMachine

    register = APEL.dirac_accounting_record(finished_vm(), settings())["Value"]
    values = dict(zip(register.fieldsList, register.getValues()[3]))
    forged = VirtualMachine()
    forged.setStartTime(register.startTime)
    forged.setEndTime(register.endTime)
    forged.setValuesFromDict({**values, "CPUTime": values["CoreWallTime"] + 1})
    result = forged.checkValues()
    assert not result["OK"] and "CPUTime" in result["Message"]


def test_sync_counts_are_read_added_to_and_saved_under_one_lock(tmp_path, monkeypatch):
    """The VMDirector's CEs account at once (CEsInParallel): unserialised, two read {} and both
    wrote "1" (or one failed renaming the other's .sync-counts.json.new) and the VM was
    accounted again the next cycle. The counts are read and saved with the module's lock held
    (seen from inside the read and the save, no timing involved), and two CEs accounting in
    threads add up: NumberOfJobs 1 and 2, the file says 2."""
    import threading

    load, save = APEL._load_counts, APEL._save_counts
    held = []

    def load_counts(path):
        held.append(("load", APEL._SYNC_COUNTS_LOCK.locked()))
        return load(path)

    def save_counts(path, counts):
        held.append(("save", APEL._SYNC_COUNTS_LOCK.locked()))
        return save(path, counts)

    monkeypatch.setattr(APEL, "_load_counts", load_counts)
    monkeypatch.setattr(APEL, "_save_counts", save_counts)
    mode = _mode_settings(tmp_path, "Jobs")
    results = {}

    def account(name):
        results[name] = APEL.write_apel([finished_vm(name=name)], mode)

    threads = [threading.Thread(target=account, args=("jdirac-" + c * 32,)) for c in "12"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result["OK"] for result in results.values()), results
    assert sorted(held) == [("load", True), ("load", True), ("save", True), ("save", True)]
    assert not APEL._SYNC_COUNTS_LOCK.locked()
    messages = [split_message(m) for m in read_messages(str(tmp_path / "apel"))]
    syncs = [r for header, records in messages if header == SYNC_HEADER for r in records]
    assert sorted(s["NumberOfJobs"] for s in syncs) == ["1", "2"]
    assert sum(load(APEL.sync_counts_path(str(tmp_path / "apel"))).values()) == 2
