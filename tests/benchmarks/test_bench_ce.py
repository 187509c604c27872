"""Smoke test of benchmarks/bench_ce.py: the --quick run, its JSON and its plot (no timing checks)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KINDS = ("ours", "stock")
CES = 4


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-results")
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_ce.py"), "--quick", "--latency-ms", "0",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    (json_path,) = out.glob("*.json")
    (png_path,) = out.glob("*.png")
    return json.loads(json_path.read_text()), png_path, completed.stdout


def _entry(doc, n, kind, scenario):
    matches = [r for r in doc["results"] if (r["n"], r["ce"], r["scenario"]) == (n, kind, scenario)]
    assert len(matches) == 1, (n, kind, scenario)
    return matches[0]


def test_every_measurement_is_there_and_sane(quick_run):
    doc, _, _ = quick_run
    sizes = doc["settings"]["sizes"]
    assert sizes == sorted(sizes) and len(sizes) >= 2
    expected = {(n, k, s) for n in sizes for k in KINDS for s in ("monitoring", "submission")}
    expected |= {(n, "ours", "vmdirector") for n in sizes}
    cycles = ("sd_first", *(f"sd_steady_{c:g}" for c in doc["settings"]["changes_percent"]))
    expected |= {(n, k, s) for n in sizes for k in KINDS for s in cycles}
    expected |= {(n, "ours", s.replace("sd_", "vmd_")) for n in sizes for s in cycles}
    assert {(r["n"], r["ce"], r["scenario"]) for r in doc["results"]} == expected
    for entry in doc["results"]:
        assert entry["repetitions"] >= 1
        for key in ("requests", "wall_s"):
            summary = entry[key]
            assert summary["n"] == entry["repetitions"]
            assert 0 < summary["min"] <= summary["median"] <= summary["max"], (entry["scenario"], summary)
        assert entry["process_cpu_s"]["median"] > 0
        if entry["cpu_s"] is not None:  # the client's threads are part of the process
            assert entry["process_cpu_s"]["max"] >= entry["cpu_s"]["min"]


def test_monitoring_answers_every_pilot(quick_run):
    doc, _, _ = quick_run
    for n in doc["settings"]["sizes"]:
        for kind in KINDS:
            detail = _entry(doc, n, kind, "monitoring")["detail"]
            assert detail["pilots"] == n
            assert sum(detail["statuses"].values()) == n
            assert "Unknown" not in detail["statuses"]
            assert set(detail["ce_status"]) == set(detail["ce_truth"]) == set(doc["settings"]["ces"])
            if kind == "ours":  # per CE, from its own VMs: ACTIVE running, BUILD waiting
                assert detail["ce_status"] == detail["ce_truth"]


def test_request_counts_follow_each_ce_design(quick_run):
    doc, _, _ = quick_run
    small, large = doc["settings"]["sizes"][0], doc["settings"]["sizes"][-1]
    submit = doc["settings"]["submit_count"]
    # the stock CE asks for each pilot, then lists the servers once per CE
    for n in (small, large):
        stock = _entry(doc, n, "stock", "monitoring")
        assert stock["requests"]["median"] == n + CES
        assert stock["by_call"]["compute GET /v2.1/servers/<server_id>"] == n
    # ours: the same number of requests whatever N (no pagination at these sizes)
    ours_small = _entry(doc, small, "ours", "monitoring")["requests"]["median"]
    assert _entry(doc, large, "ours", "monitoring")["requests"]["median"] == ours_small
    assert ours_small < large + CES  # fewer than the stock CE's at the larger N
    for n in (small, large):
        for kind in KINDS:
            entry = _entry(doc, n, kind, "submission")
            assert entry["detail"]["created"] == submit
            assert entry["by_call"]["compute POST /v2.1/servers"] == submit
        director = _entry(doc, n, "ours", "vmdirector")
        assert director["detail"]["vms"] == n
        assert director["by_call"] == {"compute GET /v2.1/servers/detail": CES}
        assert director["cpu_s"]["median"] >= director["detail"]["policy_cpu_s"] > 0


def test_ratios_memory_and_outputs(quick_run):
    doc, png_path, stdout = quick_run
    sizes = doc["settings"]["sizes"]
    assert {(r["n"], r["scenario"]) for r in doc["ratios"]} == {
        (n, s) for n in sizes for s in ("monitoring", "submission")}
    for row in doc["ratios"]:
        stock = _entry(doc, row["n"], "stock", row["scenario"])["requests"]["median"]
        ours = _entry(doc, row["n"], "ours", row["scenario"])["requests"]["median"]
        assert row["requests"] == pytest.approx(stock / ours)
    assert {(m["n"], m["ce"]) for m in doc["memory"]} == {(n, k) for n in sizes for k in KINDS}
    for memory in doc["memory"]:
        assert memory["max_rss_mib"] >= memory["rss_before_mib"] > 0
        assert memory["growth_mib"] == pytest.approx(memory["max_rss_mib"] - memory["rss_before_mib"])
    # at the quick sizes only the submission target applies (the others name N=1000 and N=5000)
    assert [t["target"] for t in doc["targets"]] == [f"submission N={n}: wall time stock/ours" for n in sizes]
    for target in doc["targets"]:
        assert target["met"] == (target["measured"] >= 5)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "stock/ours" in stdout and f"{sizes[-1]:>5}  monitoring pass requests" in stdout


def test_real_cycles_count_requests_and_bytes(quick_run):
    doc, _, stdout = quick_run
    assert doc["settings"]["changes_percent"] == [1, 10]
    for n in doc["settings"]["sizes"]:
        first = _entry(doc, n, "ours", "sd_first")["detail"]
        assert first["total"]["listing_bytes"] > 0  # a first cycle lists in full
        for percent in (1, 10):
            ours = _entry(doc, n, "ours", f"sd_steady_{percent}")["detail"]
            stock = _entry(doc, n, "stock", f"sd_steady_{percent}")["detail"]
            assert ours["changed"] >= 1 and ours["pilots"] == n
            # ours: one changes-since listing and one quota reading for the project's 4 CEs
            assert ours["monitoring"]["compute_requests"] <= 2, ours
            assert 0 < ours["monitoring"]["compute_bytes"] < first["total"]["listing_bytes"]
            # stock: a listing per CE in cleanupPilots and in getCEStatus, a GET per pilot
            assert stock["monitoring"]["compute_requests"] >= n + 2 * CES
            assert stock["monitoring"]["compute_bytes"] > ours["monitoring"]["compute_bytes"]
            assert stock["deletes"] >= 1  # the stock CE deletes the stopped VMs it lists
            director = _entry(doc, n, "ours", f"vmd_steady_{percent}")
            assert director["by_call"] == {"compute GET /v2.1/servers/detail": 1}
            assert director["detail"]["vms"] >= n
    assert {r["cycle"] for r in doc["cycles"]} >= {"sd_first", "sd_steady_1", "vmd_steady_10"}
    assert "Real cycles:" in stdout and "SiteDirector cycle 1% changed: monitoring compute req" in stdout
