"""Checks and conversions of the values VMDB stores, shared by its table groups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import LIMITS

#: Rows per statement of a batch (names in one IN list, rows in one executemany).
CHUNK = 500


def utc_naive(value: dt.datetime | None) -> dt.datetime | None:
    """A datetime as naive UTC (the DB's representation); naive input is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def chunks(items: list, size: int | None = None) -> Iterable[list]:
    size = size or CHUNK
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RecordError(ValueError):
    """A VM record given to VMDB is malformed; the message names the field."""


def check_text(field: str, value, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RecordError(f"field {field!r} must be a string, not {type(value).__name__}")
    if required and not value:
        raise RecordError(f"field {field!r} is required")
    limit = LIMITS.get(field)
    if limit is not None and len(value) > limit:
        raise RecordError(f"field {field!r} is longer than {limit} characters")
    return value


def check_names(names) -> list[str]:
    if isinstance(names, str):
        names = [names]
    return [check_text("vm_name", name, required=True) for name in names]
