"""What the lifecycle policy tests share: the CE they speak of and its thresholds."""

from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import Thresholds

CE = "cloud.example.org"


def thresholds(**overrides) -> Thresholds:
    """The thresholds of the policy tests (a VM lives at most a day), with `overrides`."""
    values = {
        "boot_timeout": 600,
        "max_lifetime": 86400,
        "zombie_grace": 300,
        "orphan_grace": 300,
        "lost_pilot_grace": 120,
        "heartbeat_timeout": 900,
        "fizzle_seconds": 600,
        "backoff_seconds": 1800,
        "deleting_timeout": 600,
    }
    return Thresholds(**{**values, **overrides})
