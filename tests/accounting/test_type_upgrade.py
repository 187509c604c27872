"""A v0.1.0 AccountingDB keeps its VirtualMachine records after the type gains fields."""

import datetime as dt
import uuid

import pytest

from JenniferDIRAC.AccountingSystem.Client.Types import VirtualMachine as vm_type

START = dt.datetime(2026, 6, 1, 10, 0)


class OldVirtualMachine(vm_type.BaseAccountingType):
    """The type as v0.1.0 registered it."""

    def __init__(self):
        super().__init__()
        self.definitionKeyFields = list(vm_type.V010_KEY_FIELDS)
        self.definitionAccountingFields = list(vm_type.V010_VALUE_FIELDS)
        self.checkType()


OldVirtualMachine.__name__ = "VirtualMachine"


@pytest.fixture
def accounting_db(mariadb):
    from DIRAC import gConfig
    from diraccfg import CFG

    name = "AccountingDB_" + uuid.uuid4().hex[:10]
    mariadb.create_database(name)
    cfg = (
        "Systems\n{\n  Databases\n  {\n"
        f"    User = {mariadb.user}\n    Password = {mariadb.password}\n"
        f"    Host = {mariadb.host}\n    Port = {mariadb.port}\n  }}\n"
        "  Accounting\n  {\n    Databases\n    {\n      AccountingDB\n      {\n"
        f"        DBName = {name}\n      }}\n    }}\n  }}\n}}\n"
    )  # fmt: skip
    gConfig.loadCFG(CFG().loadFromBuffer(cfg))
    yield cfg
    mariadb.drop_database(name)


def epoch(when):
    return int(when.replace(tzinfo=dt.UTC).timestamp())


def wall_by(db, grouping):
    from JenniferDIRAC.AccountingSystem.private.Plotters.VirtualMachinePlotter import VirtualMachinePlotter

    request = {
        "startTime": epoch(START - dt.timedelta(days=2)), "endTime": epoch(START + dt.timedelta(days=2)),
        "condDict": {}, "grouping": grouping, "groupingFields": ("%s", [grouping]),
    }  # fmt: skip
    result = VirtualMachinePlotter(db)._reportWallTime(request)
    assert result["OK"], result.get("Message")
    return {group: max(series.values()) for group, series in result["Value"]["data"].items()}


def run_upgrade_command(cfg, root):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (root / "etc").mkdir(parents=True)
    (root / "etc" / "dirac.cfg").write_text(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
    env["DIRAC_ROOT_PATH"] = str(root)
    command = Path(sys.executable).parent / "dirac-vm-accounting-upgrade"
    return subprocess.run([str(command)], env=env, capture_output=True, text=True, timeout=180)


def test_v010_records_survive_the_upgrade(accounting_db, monkeypatch, tmp_path):
    from DIRAC.AccountingSystem.DB.AccountingDB import AccountingDB
    from DIRAC.Core.Utilities.Plotting.TypeLoader import TypeLoader

    from JenniferDIRAC.AccountingSystem.DB.TypeUpgrade import upgrade_type

    with monkeypatch.context() as patch:  # what a v0.1.0 installation registered
        patch.setattr(TypeLoader, "getTypes", lambda self: {"VirtualMachine": OldVirtualMachine})
        old = AccountingDB()
        old_keys = ["CLOUD.A.it", "ce.a", "belle", "m1", "p", "Completed"]
        result = old._insertRecordDirectly(
            "VirtualMachine", epoch(START), epoch(START) + 7200, [*old_keys, 1, 4, 7200, 28800, 288000.0]
        )
        assert result["OK"], result.get("Message")

    new_keys = ["CLOUD.A.it", "ce.a", "belle", "m1", "p", "Completed", "CE"]
    before = AccountingDB()  # the DataStore of the new version, before the upgrade
    assert before.dbCatalog["VirtualMachine"]["values"] == [v for v, _ in vm_type.V010_VALUE_FIELDS]
    refused = before._insertRecordDirectly(
        "VirtualMachine",
        epoch(START),
        epoch(START) + 3600,
        [*new_keys, 1, 4, 3600, 14400, 144000.0, 12000, 120000.0],
    )
    assert not refused["OK"]  # why the upgrade is needed

    done = run_upgrade_command(accounting_db, tmp_path / "admin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "added BenchmarkSource, CPUTime, NormCPUTime; restart" in done.stdout
    assert upgrade_type(before)["Value"]["added"] == []  # idempotent

    db = AccountingDB()  # restarted
    assert db.dbCatalog["VirtualMachine"]["keys"] == [
        k for k, _ in vm_type.VirtualMachine().definitionKeyFields
    ]
    result = db._insertRecordDirectly(
        "VirtualMachine",
        epoch(START),
        epoch(START) + 3600,
        [*new_keys, 1, 4, 3600, 14400, 144000.0, 12000, 120000.0],
    )
    assert result["OK"], result.get("Message")
    assert wall_by(db, "BenchmarkSource") == pytest.approx({"Unknown": 7200.0, "CE": 3600.0})
    assert wall_by(db, "Site") == pytest.approx({"CLOUD.A.it": 10800.0})
