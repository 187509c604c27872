"""How the CE marks the record of a VM it could not create, and how the VMDirector reads it.

The CE writes the VMDB delete reason of such a VM with ``create_failed_reason``; the lifecycle
policy counts it towards the CE's backoff with ``is_create_failure``. A full project is a
pause, not a failure of the CE, so a reason that speaks of the quota does not count.
"""

from __future__ import annotations

#: Start of the delete reason of a VM the CE could not create.
CREATE_FAILED = "create failed"
#: A reason holding this word (any case) reports a quota refusal.
QUOTA = "quota"
#: Longest delete reason the CE writes.
REASON_MAX_CHARS = 250


def create_failed_reason(error: str) -> str:
    """The delete reason the CE records for a VM it could not create."""
    return f"{CREATE_FAILED}: {error}"[:REASON_MAX_CHARS]


def is_create_failure(reason: str) -> bool:
    """True when a delete reason marks a failed create that was not a quota refusal."""
    reason = reason.lower()
    return reason.startswith(CREATE_FAILED) and QUOTA not in reason
