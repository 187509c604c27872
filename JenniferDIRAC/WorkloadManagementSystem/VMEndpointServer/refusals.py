"""Log lines about refused requests, rate-limited: one client presenting bad tokens in a loop
wrote 51 KB/s of WARN lines in v0.1.0. The first refusal of an interval is logged in full; the
others are counted and summarised once the interval has passed (or when ``flush()`` is called by
the agent's cycle)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

Log = Callable[[str, str], None]  # (level: "info" | "warn" | "error", message)


class RefusalLog:
    def __init__(self, log: Log, interval_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._log = log
        self._interval = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._suppressed: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()  # every refusal by reason (the metrics read it)

    def refused(self, reason: str, message: str) -> None:
        """Note one refusal; `reason` is a short category ("invalid token", "rate limit", ...)."""
        now = self._clock()
        with self._lock:
            self.totals[reason] += 1
            if self._window_start is not None and now - self._window_start < self._interval:
                self._suppressed[reason] += 1
                return
            summary = self._take_summary()
            self._window_start = now
        if summary:
            self._log("warn", summary)
        self._log("warn", message)

    def flush(self) -> None:
        """Log the summary of what was suppressed so far, if anything."""
        with self._lock:
            summary = self._take_summary()
        if summary:
            self._log("warn", summary)

    def _take_summary(self) -> str:
        if not self._suppressed:
            return ""
        total = sum(self._suppressed.values())
        detail = ", ".join(f"{reason}: {count}" for reason, count in sorted(self._suppressed.items()))
        self._suppressed.clear()
        return f"{total} more refused requests not logged one by one ({detail})"
