"""The lifecycle thresholds of a CE and of each of its queues: the VMDirector's options,
overridden by a CE or queue option of the same name.

``MaxLifetime`` = 0 (the default) means the lifetime the CE gives its VMs
(``Context_MaxLifetime``) plus ``ShutdownGrace``, the time a VM takes to power off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudError
from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import CEParameters
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import Thresholds

#: Agent option -> Thresholds field; a CE option of the same name overrides it for that CE.
THRESHOLD_OPTIONS = {
    "BootTimeout": ("boot_timeout", 3600),
    "ZombieGrace": ("zombie_grace", 1800),
    "OrphanGrace": ("orphan_grace", 900),
    "LostPilotGrace": ("lost_pilot_grace", 600),
    "HeartbeatTimeout": ("heartbeat_timeout", 3600),
    "FizzleSeconds": ("fizzle_seconds", 600),
    "BackoffSeconds": ("backoff_seconds", 1800),
    "DeletingTimeout": ("deleting_timeout", 900),
}


@dataclass(frozen=True)
class AgentThresholds:
    """The agent's threshold options, in seconds."""

    defaults: Mapping[str, float]  # THRESHOLD_OPTIONS' options
    max_lifetime: float
    shutdown_grace: float

    @classmethod
    def from_options(cls, get_option: Callable) -> AgentThresholds:
        """From the agent's options (``get_option(name, default)``); ValueError naming a bad one."""
        seconds = {option: default for option, (_, default) in THRESHOLD_OPTIONS.items()}
        seconds.update(MaxLifetime=0, ShutdownGrace=3600)
        for option, default in seconds.items():
            value = get_option(option, default)
            seconds[option] = _seconds(value)
            if seconds[option] < 0:
                raise ValueError(
                    f"VMDirector option {option}: must be a number of seconds >= 0, not {value!r}"
                )
        return cls(
            max_lifetime=seconds.pop("MaxLifetime"),
            shutdown_grace=seconds.pop("ShutdownGrace"),
            defaults=seconds,
        )

    def thresholds(self, params: Mapping, config: CloudCEConfig) -> Thresholds:
        """The agent's thresholds, overridden by CE (or queue) options of the same name."""
        values = {}
        for option, default in [*self.defaults.items(), ("MaxLifetime", self.max_lifetime)]:
            value = params.get(option, default)
            values[option] = _seconds(value)
            if values[option] < 0:
                raise CENotServedThisCycle(
                    f"CS option {option} of CE {config.ce_name}: must be seconds >= 0, not {value!r}"
                )
        max_lifetime = values.pop("MaxLifetime") or config.context_max_lifetime + self.shutdown_grace
        return Thresholds(
            max_lifetime=max_lifetime, **{THRESHOLD_OPTIONS[option][0]: v for option, v in values.items()}
        )

    def per_queue(self, ce: str, options: CEParameters, config: CloudCEConfig):
        """(the CE-level thresholds, {queue: that queue's thresholds})."""
        ce_level = self.thresholds(options.ce_level, lifetime_config(ce, options.ce_level, config))
        queues = {
            queue: self.thresholds(params, lifetime_config(ce, params, config))
            for queue, params in options.queues.items()
        }
        return ce_level, queues


def lifetime_config(ce: str, params: Mapping, fallback: CloudCEConfig) -> CloudCEConfig:
    """The configuration that gives `params`' Context_MaxLifetime; the CE level alone may lack
    options only its queues set (Instance_Image...), then only the lifetime is taken."""
    try:
        return CloudCEConfig.from_ce_parameters(ce, params)
    except CloudError:
        pass
    try:
        lifetime = int(params.get("Context_MaxLifetime", fallback.context_max_lifetime))
    except (TypeError, ValueError):
        raise CENotServedThisCycle(
            f"CS option Context_MaxLifetime of CE {ce}: not a number of seconds"
        ) from None
    return dataclasses.replace(fallback, context_max_lifetime=lifetime)


def _seconds(value) -> float:
    """`value` as seconds; -1 (refused by the callers) if it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return -1.0
