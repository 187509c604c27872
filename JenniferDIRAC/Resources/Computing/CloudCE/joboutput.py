"""A pilot's output for ``getJobOutput``: the VM's console log, then the logs the VM uploaded to
the VM endpoint (kept in VMDB). What exists is returned when the rest is missing (Nova answers
409 for the console of a VM that never got a host, a deleted VM has none), with a ``not
available`` section saying what is missing."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from JenniferDIRAC.Resources.Cloud.errors import CloudError


def pilot_output(name: str, read_console: Callable[[], str | None], logs: Mapping[str, bytes]) -> tuple[str, list[str]]:
    """(the output of VM `name`, "" when nothing exists; what is missing). `read_console()` is the
    console log, None when the VM no longer exists; a CloudError is what is missing."""
    sections, missing = [], []
    try:
        console = read_console()
        if console is None:
            missing.append("console log: the VM no longer exists")
        else:
            sections.append(f"==== console log of {name} ====\n{console}")
    except CloudError as exc:
        missing.append(f"console log: {exc}")
    for kind in sorted(logs):
        text = logs[kind].decode("utf-8", errors="replace")
        sections.append(f"==== {kind} (uploaded by {name}) ====\n{text}")
    if not logs:
        missing.append("uploaded logs: none in the VM database")
    if sections and missing:
        sections.append("==== not available ====\n" + "\n".join(missing))
    return "\n".join(sections), missing
