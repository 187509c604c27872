"""A cloud CE's parameters for each of its queues, as DIRAC's SiteDirector builds the CE of a
queue: one rule for the VMDirector (each queue's options apply to that queue's VMs) and the
admin commands.

``getQueues()`` gives, per site and CE, the CE's options with a ``Queues`` section. DIRAC's
``getQueuesResolved`` turns each queue into its parameters (the queue's options, CE-level
inherited ones, ``Queue``, ``GridCE``, ``Site``, ``CPUTime``, tags); the CE of that queue sees
the CE's options overridden by those. ``parameters_by_ce`` gives both levels of every CE
(``CEParameters``), with the one rule for what the CE has once whatever the queue
(``with_first_queue``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

from DIRAC import S_OK


def ce_level_parameters(site: str, ce: str, ce_dict: Mapping) -> dict:
    """The CE's own options (no queue's), with ``Site`` (unless the CE sets one) and ``GridCE``:
    what applies to a VM whose queue is not known (created before VMs carried it)."""
    params = {k: v for k, v in ce_dict.items() if k != "Queues"}
    params.setdefault("Site", site)
    params["GridCE"] = ce
    return params


def queue_parameters(site_dict: Mapping):
    """S_OK({CE name: {queue: parameters}}) for ``getQueues()``'s answer (left unchanged), each
    queue's parameters as the SiteDirector gives them to the CE of that queue."""
    from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import getQueuesResolved

    ce_options = {
        (site, ce): {k: v for k, v in ce_dict.items() if k != "Queues"}
        for site, ces in site_dict.items()
        for ce, ce_dict in ces.items()
    }
    result = getQueuesResolved(copy.deepcopy(dict(site_dict)))  # it pops the Queues sections
    if not result["OK"]:
        return result
    ces: dict[str, dict[str, dict]] = {}
    for resolved in result["Value"].values():
        options = ce_options[(resolved["Site"], resolved["CEName"])]
        ces.setdefault(resolved["CEName"], {})[resolved["QueueName"]] = {**options, **resolved["ParametersDict"]}
    return S_OK({ce: dict(sorted(queues.items())) for ce, queues in sorted(ces.items())})


@dataclass(frozen=True)
class CEParameters:
    """A CE's parameters: ``ce_level`` (no queue's) and each queue's (``queues``, by name)."""

    ce_level: dict
    queues: dict[str, dict] = field(default_factory=dict)

    @property
    def with_first_queue(self) -> dict:
        """The CE with its first queue (by name): for what the CE has once whatever the queue of a
        VM (credentials, listing, accounting, killing, logs); the CE level if it has no queue."""
        return next(iter(self.queues.values()), self.ce_level)


def parameters_by_ce(site_dict: Mapping):
    """S_OK({CE name: CEParameters}) for ``getQueues()``'s answer (left unchanged); a CE without
    a ``Queues`` section has no queue."""
    sites = {
        site: {ce: {**ce_dict, "Queues": ce_dict.get("Queues") or {}} for ce, ce_dict in ces.items()}
        for site, ces in site_dict.items()
    }
    result = queue_parameters(sites)
    if not result["OK"]:
        return result
    return S_OK(
        {
            ce: CEParameters(ce_level_parameters(site, ce, ce_dict), result["Value"].get(ce, {}))
            for site, ces in sites.items()
            for ce, ce_dict in ces.items()
        }
    )
