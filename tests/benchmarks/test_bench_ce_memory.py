"""Smoke test of benchmarks/bench_ce_memory.py: a few cycles at a small N, both CEs, end to end;
its JSON holds the samples (the CE process's, the cloud's in a process of its own), the verdict
and the snapshot diff (no timing or memory figures checked)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.bench_ce_memory import slope, verdict  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-ce-memory")
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_ce_memory.py"), "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    (json_path,) = out.glob("*-ce-memory.json")
    return json.loads(json_path.read_text()), completed.stdout


def test_both_ces_ran_every_cycle_and_were_sampled(quick_run):
    doc, stdout = quick_run
    settings = doc["settings"]
    assert [r["ce"] for r in doc["runs"]] == ["ours", "stock"]
    expected_cycles = list(range(0, settings["cycles"] + 1, settings["sample_every"]))
    for run in doc["runs"]:
        assert [s["cycle"] for s in run["samples"]] == expected_cycles
        for sample in run["samples"]:
            assert sample["rss_mib"] > 0 and sample["traced_mib"] >= 0 and sample["cloud_rss_mib"] > 0
        assert all(s["traced_mib"] > 0 for s in run["samples"][1:])  # traced after the first cycle
        # the fleet stays near N pilots: as many submitted per cycle as end (a VM submitted is
        # ACTIVE, and may end, a cycle later); without VMs ending it would grow by one batch a cycle
        per_cycle = run["ended_per_cycle"]
        assert settings["n"] - run["not_submitted"] <= run["live_pilots_at_end"] <= settings["n"] + 2 * per_cycle
        v = run["verdict"]
        assert (v["from_cycle"], v["to_cycle"]) == (settings["from_cycle"], settings["cycles"])
        assert v["flat"] == (v["traced"]["growth_mib"] < settings["flat_mib"])
        assert {"slope_mib_per_100_cycles", "growth_mib", "endpoints_diff_mib"} <= set(v["rss"])
        assert run["growth_top"] and all("where" in e and "size_diff_kib" in e for e in run["growth_top"])
        # the CE process traces no cloud: LocalCloud serves from its own process
        assert not [e for e in run["growth_top"] if "JenniferLocalCloud" in " ".join(e["traceback"])]
    # the tokens outlive the run's cloud time (the cloud's clock runs ahead of the CEs')
    assert settings["token_ttl_s"] > (settings["cycles"] + 1) * settings["cycle_gap_s"]
    assert [t["met"] for t in doc["targets"]] == [r["verdict"]["flat"] for r in doc["runs"]]
    assert "cycle    ours RSS MiB" in stdout and ("PASS" in stdout or "FAIL" in stdout)


def test_growth_is_the_least_squares_slope_over_the_judged_samples():
    samples = [{"cycle": c, "traced_mib": 10 + 0.01 * c + (0.5 if c == 40 else 0), "rss_mib": 100.0}
               for c in range(0, 201, 10)]
    samples[0]["traced_mib"] = 0.0  # before the first cycle: not judged
    result = verdict(samples, 20, 200, flat_mib=2.0)
    # 0.01 MiB a cycle; the one 0.5 MiB outlier moves the slope by 6% only, the endpoints not at all
    assert result["traced"]["growth_mib"] == pytest.approx(1.8 - 0.5 * 70 / 57000 * 180)
    assert result["traced"]["slope_mib_per_100_cycles"] == pytest.approx(1.0 - 0.5 * 70 / 57000 * 100)
    assert result["traced"]["endpoints_diff_mib"] == pytest.approx(1.8)
    assert result["flat"] is True and result["rss"]["growth_mib"] == pytest.approx(0.0)
    steeper = [dict(s, traced_mib=s["traced_mib"] * 3) for s in samples]
    assert verdict(steeper, 20, 200, flat_mib=2.0)["flat"] is False
    assert slope([(0, 1.0), (1, 1.0)]) == 0.0
