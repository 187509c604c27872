"""Median and range of repeated measurements, and the stock/ours ratio."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        if not values:
            raise ValueError("no measurement to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def to_dict(self) -> dict:
        return asdict(self)


def ratio(stock: float, ours: float) -> float | None:
    """stock / ours; None when ours is 0 (nothing to divide by)."""
    return stock / ours if ours > 0 else None
