"""Validate a #cloud-config document against the schema of the system's cloud-init.

cloud-init is not on PyPI; Debian's package is used, in a separate /usr/bin/python3 process so
that none of its modules mix with the virtualenv's. Beyond its schema (which accepts any
top-level key), keys that no cloud-init module knows are reported: a misspelled module name
would otherwise be silently ignored on the VM.
"""

from __future__ import annotations

import json
import subprocess

from .errors import CloudConfigInvalid, UserDataError

SYSTEM_PYTHON = "/usr/bin/python3"
_MAX_PROBLEM_CHARS = 300

_CHECKER = r"""
import json, sys
problems = []
try:
    import yaml
    from cloudinit.config.schema import (SchemaValidationError, get_jsonschema_validator,
                                         get_schema, validate_cloudconfig_schema)
    get_jsonschema_validator()
except ImportError as exc:
    print(json.dumps({"error": "cloud-init schema validation unavailable: %s" % exc}))
    sys.exit(0)
text = sys.stdin.read()
if not text.startswith("#cloud-config"):
    problems.append('the document must begin with "#cloud-config"')
try:
    config = yaml.safe_load(text)
except yaml.YAMLError as exc:
    problems.append("not valid YAML: %s" % str(exc).replace("\n", " "))
    config = None
if config is not None and not isinstance(config, dict):
    problems.append("the top level must be a mapping")
elif isinstance(config, dict):
    schema = get_schema()
    known = set(schema.get("properties", {}))
    for definition in schema.get("$defs", {}).values():
        known.update(definition.get("properties", {}))
    for key in sorted(set(config) - known, key=str):
        problems.append("%s: unknown top-level key (no cloud-init module reads it)" % key)
    try:
        validate_cloudconfig_schema(config, schema, strict=True, log_details=False)
    except SchemaValidationError as exc:
        problems.append(str(exc))
print(json.dumps({"problems": problems}))
"""


def validate_cloud_config(text: str) -> None:
    """Raise CloudConfigInvalid listing every problem of `text`; UserDataError if it cannot check."""
    try:
        result = subprocess.run(
            [SYSTEM_PYTHON, "-I", "-c", _CHECKER],
            input=text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserDataError(f"cannot run cloud-init's schema check with {SYSTEM_PYTHON}: {exc}") from None
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise UserDataError(
            f"cloud-init's schema check failed (exit code {result.returncode}): {result.stderr.strip()[-300:]}"
        ) from None
    if "error" in answer:
        raise UserDataError(answer["error"])
    problems = [p if len(p) <= _MAX_PROBLEM_CHARS else p[:_MAX_PROBLEM_CHARS] + "..." for p in answer["problems"]]
    if problems:
        raise CloudConfigInvalid(problems)
