"""Accounting records of VMs for outside consumers: APEL cloud usage records."""
