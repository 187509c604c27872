"""A VM's per-core benchmark: the one its flavor's properties declare (cASO's keys), else the
CE's ``HS06PerCore``; the name maps to APEL's job ``ServiceLevelType`` and cloud ``BenchmarkType``."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_HS06_PER_CORE = 10.0

FLAVOR_BENCHMARK_NAME = "accounting:benchmark_name"
FLAVOR_BENCHMARK_VALUE = "accounting:benchmark_value"
#: benchmark names accepted in flavor properties -> (APEL job ServiceLevelType, cloud BenchmarkType)
BENCHMARK_NAMES = {
    "hs06": ("HEPSPEC", "HEPSPEC06"),
    "hepspec": ("HEPSPEC", "HEPSPEC06"),
    "hepspec06": ("HEPSPEC", "HEPSPEC06"),
    "hs23": ("HEPscore23", "HEPscore23"),
    "hepscore23": ("HEPscore23", "HEPscore23"),
}


@dataclass(frozen=True)
class Benchmark:
    """Per-core benchmark of a VM and where it came from (``Flavor`` or ``CE``)."""

    name: str  # key of BENCHMARK_NAMES
    value: float
    source: str

    @property
    def service_level_type(self) -> str:
        return BENCHMARK_NAMES[self.name][0]

    @property
    def cloud_type(self) -> str:
        return BENCHMARK_NAMES[self.name][1]


def flavor_benchmark(properties: dict[str, str]) -> Benchmark | None:
    """The benchmark a flavor's properties declare (cASO's keys), None if they declare none.
    ValueError naming the property if they declare a bad one."""
    name = str(properties.get(FLAVOR_BENCHMARK_NAME, "")).strip()
    value = str(properties.get(FLAVOR_BENCHMARK_VALUE, "")).strip()
    if not name and not value:
        return None
    if name.lower() not in BENCHMARK_NAMES:
        raise ValueError(f"flavor property {FLAVOR_BENCHMARK_NAME} = {name!r}: expected HS06 or HS23")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"flavor property {FLAVOR_BENCHMARK_VALUE} = {value!r} is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"flavor property {FLAVOR_BENCHMARK_VALUE} = {value!r} must be a positive number")
    return Benchmark(name.lower(), number, "Flavor")
