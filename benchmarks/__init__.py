"""Benchmarks of JenniferDIRAC (run from the repository root, see ``bench_ce.py``)."""
