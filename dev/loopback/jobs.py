"""A user's job on the loopback server, as the demo and the end-to-end tests run it: its JDL
(output in the sandbox) and waiting, with a deadline, for what follows its submission."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def job_jdl(name: str, executable: str, arguments: str) -> str:
    """The JDL of a short job whose std.out and std.err come back in its output sandbox."""
    return f"""
JobName = "{name}";
Executable = "{executable}";
Arguments = "{arguments}";
StdOutput = "std.out";
StdError = "std.err";
OutputSandbox = {{"std.out", "std.err"}};
CPUTime = 1000;
"""


def wait_for(what: str, probe: Callable[[], T], timeout: float) -> T:
    """Poll `probe` every second until it returns something true (returned), or raise
    TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
