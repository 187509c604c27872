"""Prometheus metrics of the VMDirector and the VM endpoint (metrics.py, exposition.py)."""
