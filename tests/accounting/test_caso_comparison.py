"""Our cloud records v0.4 compared field by field with what cASO (PyPI) writes for the same VM.

cASO needs OpenStack's oslo libraries and pydantic 2, which cannot live in the project's venv
(DIRAC pins): it gets its own venv, ``var/caso-venv`` (built once, from PyPI, about a minute).
"""

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
from apel_testkit import CLOUD_HEADER, parse_message, split_message, validate

from JenniferDIRAC import __version__
from JenniferDIRAC.WorkloadManagementSystem.Accounting import APEL

HERE = Path(__file__).resolve().parent
CASO_VENV = Path(os.environ.get("JDIRAC_CASO_VENV", HERE.parents[1] / "var" / "caso-venv"))
CASO_VERSION = "5.2.2"
START = dt.datetime(2026, 9, 14, 6, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def caso_python():
    python = CASO_VENV / "bin" / "python"
    ready = (
        python.exists()
        and subprocess.run(
            [str(python), "-c", "import caso.record"], capture_output=True, timeout=120
        ).returncode
        == 0
    )
    if not ready:
        for cmd in (
            ["python3", "-m", "uv", "venv", "-q", "--allow-existing", str(CASO_VENV), "--python", "3.11"],
            ["python3", "-m", "uv", "pip", "install", "-q", "--python", str(python), f"caso=={CASO_VERSION}"],
        ):
            subprocess.run(cmd, check=True, timeout=600)
    return str(python)


def vm(**extra):
    base = {
        "vm_name": "jdirac-" + "c" * 32, "vm_id": "0b7d1b4e-5a4e-4f0e-9d1c-7a3f6c2e9b10", "ce": "nova.example.org",
        "site": "CLOUD.Example.org", "vo": "t2k.org", "profile": "t2k", "flavor": "m1.xlarge", "cores": 8,
        "ram_mb": 16384, "started": START, "end": START + dt.timedelta(hours=7, seconds=13),
        "wall_seconds": 7 * 3600 + 13, "heartbeat_load": "7.9 7.8 7.8 9/400 5555 cpu=180000",
    }  # fmt: skip
    base.update(extra)
    return base


@pytest.mark.parametrize(
    "properties",
    [{}, {"accounting:benchmark_name": "HS23", "accounting:benchmark_value": "16.25"}],
)
def test_cloud_record_equals_casos(caso_python, properties):
    settings = APEL.AccountingSettings(
        hs06_per_core=lambda vm: 11.0,
        flavor_properties=lambda vm: properties,
        site_name=lambda s: "EXAMPLE-CLOUD",
    )
    record = APEL.cloud_record(vm(), settings)
    ours = parse_message(APEL.format_message([record]), CLOUD_HEADER)[0]
    validate(CLOUD_HEADER, ours)
    same_vm = {
        "start": record.start_time, "end": record.end_time, "uuid": record.vm_uuid, "name": record.machine_name,
        "user_id": record.local_user_id, "group_id": record.local_group_id, "fqan": record.fqan,
        "cores": record.cpu_count, "ram_mb": record.memory_mb, "disk": record.disk_gb, "site": record.site_name,
        "service": record.cloud_compute_service, "benchmark": record.benchmark,
        "benchmark_type": record.benchmark_type, "dn": record.global_user_name, "cloud_type": record.cloud_type,
        "cpu": record.cpu_duration,
    }  # fmt: skip
    out = subprocess.run(
        [caso_python, str(HERE / "caso_record.py")], input=json.dumps(same_vm), capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    header, (theirs,) = split_message(out)
    assert header == CLOUD_HEADER
    validate(CLOUD_HEADER, theirs)
    assert ours == theirs  # every field, name and text
    assert ours["CpuDuration"] == "180000" and ours["WallDuration"] == str(7 * 3600 + 13)
    assert ours["CloudType"] == f"jenniferdirac/{__version__}"
    assert ours["BenchmarkType"] == ("HEPscore23" if properties else "HEPSPEC06")
