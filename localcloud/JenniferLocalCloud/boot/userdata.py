"""Split user data the way cloud-init does: gzip, MIME multipart, ``#cloud-config``, ``#!``.

Pure functions, no I/O: the in-sandbox runner executes what :func:`parse` returns. This module
must stay importable on its own (stdlib + PyYAML): the runner loads it inside the sandbox.
"""

from __future__ import annotations

import email
import gzip
from dataclasses import dataclass, field
from typing import Any

import yaml

CLOUD_CONFIG_TYPES = {"text/cloud-config", "text/cloud-config-archive"}
SCRIPT_TYPES = {"text/x-shellscript", "text/x-shellscript-per-boot", "text/x-shellscript-per-instance"}
BOOTHOOK_TYPES = {"text/cloud-boothook"}
STARTS = (
    ("#cloud-config", "text/cloud-config"),
    ("#!", "text/x-shellscript"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include", "text/x-include-url"),
    ("## template: jinja", "text/jinja2"),
    ("#part-handler", "text/part-handler"),
)


@dataclass
class Script:
    name: str
    content: bytes


@dataclass
class UserData:
    config: dict[str, Any] = field(default_factory=dict)
    scripts: list[Script] = field(default_factory=list)
    boothooks: list[Script] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # content types not run, for the console


def _maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _sniff(data: bytes) -> str:
    head = data.lstrip()[:64].decode("utf-8", "replace")
    low = head.lower()
    if low.startswith(("content-type:", "mime-version:")):
        return "multipart"
    for prefix, kind in STARTS:
        if head.startswith(prefix):
            return kind
    return "text/plain"


def parse(data: bytes) -> UserData:
    """Everything cloud-init would run from these user data bytes."""
    result = UserData()
    _add(result, _maybe_gunzip(data), None, "part-001")
    return result


def _add(result: UserData, data: bytes, declared: str | None, name: str) -> None:
    kind = _sniff(data)
    if kind == "multipart":
        message = email.message_from_bytes(data)
        index = 0
        for part in message.walk():
            if part.is_multipart():
                continue
            index += 1
            payload = part.get_payload(decode=True) or b""
            part_name = part.get_filename() or f"part-{index:03d}"
            _add(result, _maybe_gunzip(payload), part.get_content_type(), part_name)
        return
    if declared in (None, "text/plain", "text/x-not-multipart") and kind != "text/plain":
        declared = kind
    declared = declared or kind
    if declared in CLOUD_CONFIG_TYPES:
        loaded = yaml.safe_load(data.decode("utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{name}: cloud-config must be a mapping, got {type(loaded).__name__}")
        result.config.update(loaded)  # later parts win, as with cloud-init's default merge
    elif declared in SCRIPT_TYPES:
        result.scripts.append(Script(name, data))
    elif declared in BOOTHOOK_TYPES:
        result.boothooks.append(Script(name, data))
    else:
        result.skipped.append(f"{name} ({declared})")
