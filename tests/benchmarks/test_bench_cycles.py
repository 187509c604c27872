"""Smoke tests of benchmarks/bench_heartbeats.py and benchmarks/bench_vmdirector.py at small
sizes: each runs end to end and its figures hold what the method promises (no timing checks)."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(script, *args, timeout=600):
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO,
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]
    return completed.stdout


def test_bench_heartbeats_counts_one_insert_per_batch(tmp_path):
    out = _run("bench_heartbeats.py", "--n", "60", "--batch-rows", "25", "--json", str(tmp_path / "hb.json"))
    doc = json.loads((tmp_path / "hb.json").read_text())
    old, new = doc["runs"]
    assert old["Com_insert"] == 60  # one per heartbeat
    assert new["Com_insert"] <= math.ceil(60 / 25) + 1
    assert new["Questions"] < old["Questions"]
    assert "SQL statements per 1,000 heartbeats" in out


def test_bench_vmdirector_runs_real_cycles(tmp_path):
    out = _run("bench_vmdirector.py", "--n", "40", "--ended", "8", "--changed", "10", "--steady", "2",
               "--polling", "1", "--latency-ms", "0", "--per-server-ms", "0", "--delete-ms", "0",
               "--json", str(tmp_path / "vmd.json"))
    doc = json.loads((tmp_path / "vmd.json").read_text())
    assert doc["first"]["deleted"] == 8
    assert doc["first"]["by_call"]["compute DELETE /v2.1/servers/<server_id>"] == 8
    steady = doc["steady_cycles"]
    assert len(steady) == 2 and doc["steady"]["cycles"] == 2
    for cycle in steady:  # each steady cycle follows 10% of the VMs ending, and deletes them
        assert cycle["ended_before"] == 4 and cycle["deleted"] == 4
        assert cycle["delete_requests"] == 4
        assert cycle["listing_requests"] <= 2  # one listing of the project per cycle
        assert cycle["sql_total"] > 0 and cycle["cpu_s"] >= 0
    assert {row["status"] for row in doc["targets"]} <= {"PASS", "FAIL"}
    assert "target VMDirector steady cycle (median): SQL statements" in out
