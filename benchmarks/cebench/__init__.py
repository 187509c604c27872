"""The parts of ``benchmarks/bench_ce.py``: the seeded cloud, the measured scenarios, the report."""
