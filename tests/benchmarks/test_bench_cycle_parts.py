"""benchmarks/bench_vm_records.py and bench_director_cpu.py at reduced scale, as README runs them:
each runs to the end, writes its JSON, and measures what it says (the incremental read reads
the changed rows, not all of them; every cycle part of both commits is timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{script}.py"), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_vm_records_benchmark_reads_the_changed_rows_only(tmp_path):
    figures = run("bench_vm_records", tmp_path, "--ces", "2", "--live", "30", "--history", "10",
                  "--changed", "2", "--cycles", "4")["figures"]
    full, incremental = figures["every row (before)"], figures["changed rows (after)"]
    assert full["rows_median"] >= 30  # every live row of the CE
    assert 2 <= incremental["rows_median"] <= 4  # the 2 changed (and at most a VM created per cycle)
    assert full["cpu_median_ms"] > 0 and incremental["cpu_median_ms"] > 0


def test_director_cpu_benchmark_times_each_part_here_and_before(tmp_path):
    results = run("bench_director_cpu", tmp_path, "--n", "200", "--cycles", "3", "--before", "HEAD")["results"]
    assert sorted(results) == ["before (HEAD)", "this checkout"]
    for parts in results.values():
        assert sorted(parts) == ["decide (1 CE)", "decide (4 CEs)", "from_ce_parameters (4 CEs)",
                                 "pilot records (4 CEs)"]
        for part in parts.values():
            assert len(part["samples_ms"]) == 3 and all(ms > 0 for ms in part["samples_ms"])
