"""Exclusive libcloud drivers for concurrent calls.

A libcloud driver keeps the response of its last request on its connection object, so two
threads calling one driver can read each other's answers (a create returning another VM's id).
Each call leases a driver nobody else is using: an idle one, or a new one built from the same
configuration. Idle drivers are kept (their connections and tokens stay warm), so a CE holds at
most as many drivers as it ever ran calls at once (MaxSubmitThreads).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

D = TypeVar("D")


class DriverPool(Generic[D]):
    def __init__(self, build: Callable[[], D]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._idle: list[D] = []
        self.built = 0  # drivers made so far (diagnostics and tests)

    @contextlib.contextmanager
    def lease(self) -> Iterator[D]:
        with self._lock:
            driver = self._idle.pop() if self._idle else None
        if driver is None:
            driver = self._build()
            with self._lock:
                self.built += 1
        try:
            yield driver
        finally:
            with self._lock:
                self._idle.append(driver)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()
