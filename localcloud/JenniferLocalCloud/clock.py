"""The cloud's notion of time: wall clock plus an offset tests can advance."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    """Monotone-enough wall clock that tests move forward with :meth:`advance`.

    Token expiry, build delays and ``changes-since`` all read this clock, so a test can expire
    every token or finish every build without sleeping.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=timezone.utc)


def iso(ts: float) -> str:
    """Nova / Keystone style timestamp: ``2026-01-01T10:00:00Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(ts: float) -> str:
    """Keystone token style timestamp: ``2026-01-01T10:00:00.000000Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    """Parse the ISO 8601 forms clients send in ``changes-since``."""
    value = text.strip().replace("Z", "+00:00").replace(" ", "+")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
