"""Unknown configuration options: the closest known name, so that a misspelling is caught.

Used wherever JenniferDIRAC reads a CS section whose options it knows: CE parameters
(ceconfig, where an unknown option is a warning, because DIRAC's own options share the section)
and contextualization profiles (where it is an error).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_option(option: str, known: Iterable[str]) -> str | None:
    """The known option `option` most probably meant (case-insensitive), or None."""
    by_folded = {name.casefold(): name for name in known}
    match = difflib.get_close_matches(option.casefold(), list(by_folded), n=1, cutoff=0.75)
    return by_folded[match[0]] if match else None


def unknown_option_problem(option: str, known: Iterable[str], what: str = "option") -> str:
    """``unknown <what>, did you mean X?`` (or just ``unknown <what>``)."""
    suggestion = closest_option(option, known)
    return f"unknown {what}" + (f", did you mean {suggestion}?" if suggestion else "")
