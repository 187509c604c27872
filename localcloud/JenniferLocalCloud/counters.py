"""Request counters per (service, method, path template), and the bytes of the response bodies,
readable by tests and benchmarks."""

from __future__ import annotations

import threading
from collections import Counter


class RequestCounters:
    """Thread-safe counts of requests the cloud received.

    Keys are ``(service, method, template)``, e.g. ``("compute", "GET", "/servers/detail")``;
    the template is the route with placeholders (``/servers/<server_id>``), so one counter
    covers every server.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._bytes: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, service: str, method: str, template: str) -> None:
        with self._lock:
            self._counts[(service, method, template)] += 1

    def record_bytes(self, service: str, method: str, template: str, size: int) -> None:
        with self._lock:
            self._bytes[(service, method, template)] += size

    def bytes(self, service: str | None = None, method: str | None = None, template: str | None = None) -> int:
        """Bytes of the response bodies sent, for the requests that match."""
        with self._lock:
            return sum(
                n
                for (svc, meth, tmpl), n in self._bytes.items()
                if (service is None or svc == service) and (method is None or meth == method)
                and (template is None or tmpl == template)
            )

    def get(self, service: str, method: str, template: str) -> int:
        with self._lock:
            return self._counts[(service, method, template)]

    def total(self, service: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (svc, meth, _), n in self._counts.items()
                if (service is None or svc == service) and (method is None or meth == method)
            )

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._bytes.clear()

    def __getitem__(self, key: tuple[str, str, str]) -> int:
        return self.get(*key)

    def __repr__(self) -> str:
        return f"RequestCounters({self.snapshot()!r})"
