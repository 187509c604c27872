"""DIRAC accounting plots of cloud VMs and their jobs on the loopback DIRAC server.

40 weeks of records (relative to the test's own now) for three cloud sites and two VOs go
through DIRAC's DataStore: Job records as the JobWrapper sends them, VirtualMachine records as
the VMDirector sends them. ``dirac-vm-accounting-plot`` then asks the ReportGenerator (through
ReportsClient) for "normalised CPU used by site, 40 weeks" of both types, as the origin
document shows them; the figures in the CSV beside each PNG must be the records' sums per site
and week. The PNGs are kept in ``var/test-artifacts/accounting`` (or $JDIRAC_TEST_ARTIFACTS).

The session's AccountingDB is shared (the fleet page's plot test loads the same dataset, an e2e
VM adds its record): the load's sites carry a tag of their own and every plot is filtered to
them, so what ran before does not change a figure.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from accounting_data import VOS, WEEK, dataset, expected_job_sums, expected_vm_sums, load_tag

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARTIFACTS = Path(os.environ.get("JDIRAC_TEST_ARTIFACTS", REPO / "var" / "test-artifacts" / "accounting"))
#: BaseReporter's units: name -> factor to the base unit (seconds, HS06 seconds, counts)
UNIT_FACTORS = {
    "seconds": 1, "hours": 3600, "days": 86400, "weeks": 604800, "months": 2592000, "years": 31536000,
    "HS06 hours": 3600, "HS06 days": 86400, "kHS06 days": 86400e3, "MHS06 days": 86400e6,
    "VMs": 1, "kVMs": 1e3, "MVMs": 1e6,
}  # fmt: skip


def _minute(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M")


@pytest.fixture(scope="module")
def accounting(dirac_server, tmp_path_factory):
    """The dataset, written through the DataStore and visible to the ReportGenerator."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0, tzinfo=None)
    start = now - dt.timedelta(weeks=40)
    data = dataset(int(now.replace(tzinfo=dt.UTC).timestamp()), load_tag())
    sites = data["sites"]
    res = _run(
        [sys.executable, str(HERE / "accounting_load.py")], json.dumps(data), dirac_server.server_env()
    )
    assert "sent" in res.stdout, res.stdout
    checks = [
        [
            "VirtualMachine",
            "TotalVMs",
            "Site",
            {s: float(sum(vm["site"] == s for vm in data["vms"])) for s in sites},
        ],
        [
            "Job",
            "TotalNumberOfJobs",
            "Site",
            {s: float(sum(j["values"]["Site"] == s for j in data["jobs"])) for s in sites},
        ],
    ]
    probe = {"start": start.isoformat(), "end": now.isoformat(), "timeout": 300, "checks": checks}
    _run(
        [sys.executable, "-m", "dev.loopback.accounting_probe"],
        json.dumps(probe),
        dirac_server.server_env(),
        330,
    )
    return {"data": data, "start": start, "now": now, "dir": tmp_path_factory.mktemp("plots")}


def _run(cmd, stdin, env, timeout=180):
    import subprocess

    res = subprocess.run(cmd, input=stdin, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res


def plot(server, accounting, name, *args):
    """Run dirac-vm-accounting-plot as the user, filtered to the load's own sites; (png path,
    csv comment, header, rows)."""
    png = Path(accounting["dir"]) / f"{name}.png"
    server.run(
        [
            "dirac-vm-accounting-plot",
            "--start", _minute(accounting["start"]),
            "--end", _minute(accounting["now"]),
            "--output", str(png),
            "--filter", "Site=" + ",".join(accounting["data"]["sites"]),
            *args,
        ]
    )  # fmt: skip
    with open(png.with_suffix(".csv")) as stream:
        comment = stream.readline().strip()
        header, *rows = list(csv.reader(stream))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, ARTIFACTS / png.name)
    shutil.copy(png.with_suffix(".csv"), ARTIFACTS / png.with_suffix(".csv").name)
    return png, comment, header, rows


def unit_of(comment: str) -> float:
    unit = comment.split("unit:", 1)[1].split(";")[0].strip()
    return UNIT_FACTORS[unit]


def weekly_from_cumulative(comment, header, rows) -> dict:
    """{group: {week: increase}} in base units, from a cumulative plot's CSV."""
    factor = unit_of(comment)
    groups = header[2:]
    weekly: dict = defaultdict(lambda: defaultdict(float))
    previous = dict.fromkeys(groups, 0.0)
    for row in rows:
        epoch = int(row[1])
        for group, cell in zip(groups, row[2:]):
            value = float(cell) * factor
            weekly[group][epoch // WEEK * WEEK] += value - previous[group]
            previous[group] = value
    return weekly


def weekly_from_buckets(comment, header, rows) -> dict:
    factor = unit_of(comment)
    weekly: dict = defaultdict(lambda: defaultdict(float))
    for row in rows:
        for group, cell in zip(header[2:], row[2:]):
            weekly[group][int(row[1]) // WEEK * WEEK] += float(cell) * factor
    return weekly


def assert_same_sums(found: dict, expected: dict, rel=1e-6):
    assert set(found) == set(expected), (sorted(found), sorted(expected))
    for site in expected:
        weeks = set(found[site]) | set(expected[site])
        for week in sorted(weeks):
            want, got = expected[site].get(week, 0.0), found[site].get(week, 0.0)
            assert got == pytest.approx(want, rel=rel, abs=1e-3), (
                site,
                dt.datetime.fromtimestamp(week, dt.timezone.utc),
                got,
                want,
            )
    assert sum(len(v) for v in expected.values()) >= 3 * 38  # ~40 weeks of data per site


def assert_png(path: Path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes: an empty or error plot?"


def test_vm_normalised_cpu_by_site_40_weeks(dirac_server, accounting):
    png, comment, header, rows = plot(
        dirac_server,
        accounting,
        "vm-normcpu-by-site-40w",
        "--plot",
        "Cumulative Normalized CPU",
        "--group",
        "Site",
    )
    assert_png(png)
    assert "HS06" in comment
    found = weekly_from_cumulative(comment, header, rows)
    assert_same_sums(found, expected_vm_sums(accounting["data"], "NormCPUTime"))


def test_job_normalised_cpu_by_site_40_weeks(dirac_server, accounting):
    png, comment, header, rows = plot(
        dirac_server,
        accounting,
        "job-normcpu-by-site-40w",
        "--type",
        "Job",
        "--plot",
        "NormCPUUsed",
        "--group",
        "Site",
    )
    assert_png(png)
    found = weekly_from_cumulative(comment, header, rows)
    assert_same_sums(found, expected_job_sums(accounting["data"], "NormCPUTime"))


def test_vm_time_filtered_by_vo(dirac_server, accounting):
    """HS06-normalised VM time (what the cloud provided) of one VO only."""
    png, comment, header, rows = plot(
        dirac_server,
        accounting,
        "vm-normtime-belle",
        "--plot",
        "NormVMTime",
        "--group",
        "Site",
        "--filter",
        "VO=belle",
    )
    assert_png(png)
    found = weekly_from_cumulative(comment, header, rows)
    expected = expected_vm_sums(accounting["data"], "NormCoreWallTime", vo="belle")
    assert_same_sums(found, expected)
    everything = expected_vm_sums(accounting["data"], "NormCoreWallTime")
    assert sum(map(sum, (w.values() for w in expected.values()))) < sum(
        map(sum, (w.values() for w in everything.values()))
    )  # the filter did remove the other VO


def test_unproductive_vms_by_end_status(dirac_server, accounting):
    png, comment, header, rows = plot(
        dirac_server,
        accounting,
        "vm-unproductive-by-status",
        "--plot",
        "UnproductiveVMs",
        "--group",
        "EndStatus",
    )
    assert_png(png, min_bytes=3000)
    assert sorted(header[2:]) == ["Fizzled", "NeverStarted"]
    found = weekly_from_buckets(comment, header, rows)
    per_status = {g: sum(w.values()) for g, w in found.items()}
    assert per_status == pytest.approx({"Fizzled": 12.0, "NeverStarted": 12.0})  # 4 weeks x 3 sites


def test_vm_grouping_by_vo_and_benchmark_source(dirac_server, accounting):
    _, comment, header, rows = plot(
        dirac_server, accounting, "vm-walltime-by-vo", "--plot", "WallTime", "--group", "VO"
    )
    assert sorted(header[2:]) == sorted(VOS)
    found = weekly_from_cumulative(comment, header, rows)
    for vo in VOS:
        want = sum(sum(w.values()) for w in expected_vm_sums(accounting["data"], "WallTime", vo=vo).values())
        assert sum(found[vo].values()) == pytest.approx(want, rel=1e-6)
    _, _, header, _ = plot(
        dirac_server, accounting, "vm-cpu-by-benchmark", "--plot", "CPUUsed", "--group", "BenchmarkSource"
    )
    assert sorted(header[2:]) == ["CE", "Flavor"]


def test_plot_list_and_bad_plot(dirac_server, accounting):
    listed = dirac_server.run(["dirac-vm-accounting-plot", "--list"]).stdout.split("\n")
    for title in (
        "Cumulative Normalized CPU",
        "Running VMs",
        "Fizzled and never started VMs",
        "CPU efficiency",
    ):
        assert title in listed
    res = dirac_server.run(
        [
            "dirac-vm-accounting-plot",
            "--plot",
            "NoSuchPlot",
            "--weeks",
            "1",
            "--output",
            str(accounting["dir"] / "x.png"),
        ],
        check=False,
    )
    assert res.returncode == 2 and "NoSuchPlot" in res.stdout + res.stderr
    res = dirac_server.run(["dirac-vm-accounting-plot", "--filter", "Site", "--weeks", "1"], check=False)
    assert res.returncode == 1 and "Key=value" in res.stdout + res.stderr


def test_running_vms_and_cpu_efficiency(dirac_server, accounting):
    """Running VMs = wall seconds in a bucket / its length; efficiency = CPU / (cores x wall)."""
    png, comment, header, rows = plot(
        dirac_server, accounting, "vm-running-by-site", "--plot", "Running VMs", "--group", "Site"
    )
    assert_png(png)
    granularity = int(comment.split("granularity:", 1)[1].split()[0])
    running = weekly_from_buckets(comment, header, rows)
    wall = {site: {week: n * granularity for week, n in weeks.items()} for site, weeks in running.items()}
    assert_same_sums(wall, expected_vm_sums(accounting["data"], "WallTime"))

    png, comment, header, rows = plot(
        dirac_server, accounting, "vm-cpu-efficiency-by-vo", "--plot", "CPU efficiency", "--group", "VO"
    )
    assert_png(png, min_bytes=3000)
    assert sorted(header[2:]) == sorted(VOS)
    efficiencies = [float(cell) for row in rows for cell in row[2:] if float(cell) > 0]
    assert len(efficiencies) >= 2 * 38
    assert all(60.0 <= e <= 90.0 for e in efficiencies), (min(efficiencies), max(efficiencies))
