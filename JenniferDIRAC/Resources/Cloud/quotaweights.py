"""InstallationQuotaWeights: the weight of each other installation on a shared project.

``InstallationQuotaWeights = T2KDIRAC:1, GridPP:2`` names the other JenniferDIRAC installations
whose VMs share the project (by their ``jdirac-installation`` tag) with the weight each is
entitled to against this CE's ``QuotaWeight``. Everything else on the project (this
installation's other CEs, unnamed installations, VMs JenniferDIRAC did not start) is weighed
with ``OthersQuotaWeight``: with installations named, that is 0 unless set, so that
``QuotaWeight = 3`` and ``InstallationQuotaWeights = T2KDIRAC:1`` mean 3:1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

OPTION = "InstallationQuotaWeights"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_installation_weights(text: str, own_installation: str) -> Mapping[str, float]:
    """{installation: weight} from the option's ``name:weight`` items ("" -> {})."""
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, colon, raw = (piece.strip() for piece in item.partition(":"))
        if not colon or not _NAME.match(name):
            raise ConfigurationError(OPTION, f"{item!r} is not installation:weight (e.g. T2KDIRAC:1)")
        try:
            weight = float(raw)
        except ValueError:
            raise ConfigurationError(OPTION, f"{item!r}: {raw!r} is not a number") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ConfigurationError(OPTION, f"{item!r}: the weight must be a positive number")
        if name in weights:
            raise ConfigurationError(OPTION, f"installation {name} is given twice")
        if name == own_installation:
            raise ConfigurationError(
                OPTION, f"{name} is this CE's own installation (its CEs are weighed by QuotaWeight, "
                "OthersQuotaWeight)"
            )
        weights[name] = weight
    return weights
