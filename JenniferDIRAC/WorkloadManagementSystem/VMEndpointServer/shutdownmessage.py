"""The VM's shutdown message (VCYCLE / HEPiX style): ``"<code> <text>"``, parsed in linear time.

v0.1.0 used a regular expression whose optional whitespace groups backtracked: one 1 KiB body
(``"200"`` + 1020 spaces + ``"\\x01"``) cost 1.9 s of CPU. This parser looks at each character a
bounded number of times, whatever the body.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEXT_CHARS = 512
_EDGE_WHITESPACE = " \t\r\n"
_FIRST_DIGITS = "1234567"
_DIGITS = "0123456789"


@dataclass(frozen=True)
class ShutdownMessage:
    code: int  # 100-799
    text: str


class MalformedShutdownMessage(ValueError):
    """Not ``"<code 100-799> <text>"`` in UTF-8 with no control character but tab."""


def _has_control_character(text: str) -> bool:
    return any((ord(ch) < 0x20 and ch != "\t") or ch == "\x7f" for ch in text)


def parse_shutdown_message(body: bytes) -> ShutdownMessage:
    """``b"300 No more work"`` -> ShutdownMessage(300, "No more work"); raises MalformedShutdownMessage."""
    try:
        message = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedShutdownMessage("the shutdown message must be UTF-8 text") from None
    message = message.strip(_EDGE_WHITESPACE)
    code = message[:3]
    if len(code) != 3 or code[0] not in _FIRST_DIGITS or code[1] not in _DIGITS or code[2] not in _DIGITS:
        raise MalformedShutdownMessage('expected "<code 100-799> <text>", e.g. "200 Intended work completed ok"')
    rest = message[3:]
    if rest and rest[0] not in " \t":
        raise MalformedShutdownMessage('expected "<code 100-799> <text>", e.g. "200 Intended work completed ok"')
    text = rest.strip(" \t")
    if _has_control_character(text):
        raise MalformedShutdownMessage("the shutdown message text must be one line without control characters")
    return ShutdownMessage(code=int(code), text=text[:MAX_TEXT_CHARS])
