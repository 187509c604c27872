"""The schema check of a CE's own ``Context_Template``, once per template content.

A profile's template is checked by ``dirac-vm-profile-check``; a CE's ``Context_Template`` is
checked where it is used (``dirac-vm-check-ce`` and the CE's ``submitJob``), on the document it
renders, before any VM boots with it. cloud-init's validator runs in a separate process, so the
verdict is kept per template content and profile: a CE pays for it once per process, and again
only when the file changes.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from .errors import CloudConfigInvalid, ConfigurationError, UserDataError
from .schema import validate_cloud_config

OPTION = "Context_Template"

_lock = threading.Lock()
#: (sha256 of the template, profile name) -> problems (empty: valid) or the reason it was not checked
_verdicts: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}


def check_ce_template(template_path: str | Path, rendered: str, profile_name: str = "") -> str:
    """Raise ConfigurationError naming Context_Template if `rendered` (a document the template
    produced) is not valid cloud-config. Returns "" when checked, or why it could not be checked
    (cloud-init's validator missing): that reason only the first time, so it is warned once."""
    try:
        digest = hashlib.sha256(Path(template_path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigurationError(OPTION, f"cannot read {template_path}: {exc.strerror}") from None
    key = (digest, profile_name)
    first = False
    with _lock:  # concurrent submissions wait for the one check under way
        if key not in _verdicts:
            first = True
            try:
                validate_cloud_config(rendered)
                _verdicts[key] = ((), "")
            except CloudConfigInvalid as exc:
                _verdicts[key] = (tuple(exc.problems), "")
            except UserDataError as exc:
                _verdicts[key] = ((), f"{template_path} not schema-checked: {exc}")
        problems, unchecked = _verdicts[key]
    if problems:
        raise ConfigurationError(
            OPTION, f"template {template_path} renders invalid cloud-config: {'; '.join(problems)}"
        )
    return unchecked if first else ""


def forget_verdicts() -> None:
    """Drop every kept verdict (tests; a long-lived process that wants to check again)."""
    with _lock:
        _verdicts.clear()
