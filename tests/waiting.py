"""The tests' one way to wait: poll a condition until a deadline (never a sleep as synchronisation).

    from waiting import wait_until
    server = wait_until(lambda: find_server(name), 30, "the VM listed", explain=lambda: cloud_log())
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], seconds: float, what: str,
               explain: Callable[[], str] | None = None, *, interval: float = 0.2) -> T:
    """The first truthy value of predicate(), called every `interval` seconds; AssertionError
    naming `what` (and the text of `explain()`, evaluated then) if none within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = explain() if explain else ""
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}"
                                 + (f": {detail}" if detail else ""))
        time.sleep(interval)  # polling interval, not synchronisation: the deadline decides
