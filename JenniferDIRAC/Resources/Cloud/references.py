"""Pilot references and VM names.

A VM's name is chosen before the VM exists, so the pilot reference (which the VM must know as
PILOT_UUID) can be written into its user data. Ownership is never inferred from the name: the
owner tags in the VM's metadata decide that.
"""

from __future__ import annotations

import re
import secrets
import uuid

REFERENCE_SCHEME = "cloud://"
VM_NAME_PREFIX = "jdirac-"
_REFERENCE = re.compile(r"^cloud://(?P<ce>[^/]+)/(?P<vm>[A-Za-z0-9._-]+)$")


def make_vm_name() -> str:
    return VM_NAME_PREFIX + uuid.uuid4().hex


def make_stamp() -> str:
    """A pilot stamp: 32 lowercase hex characters."""
    return secrets.token_hex(16)


def pilot_reference(ce_name: str, vm_name: str) -> str:
    return f"{REFERENCE_SCHEME}{ce_name}/{vm_name}"


def parse_reference(reference: str) -> tuple[str, str]:
    """(CE name, VM name) of a pilot reference, without any stamp suffix (`ref:::stamp`)."""
    reference = reference.split(":::", 1)[0]
    match = _REFERENCE.match(reference)
    if not match:
        raise ValueError(f"not a JenniferDIRAC pilot reference: {reference!r}")
    return match.group("ce"), match.group("vm")
