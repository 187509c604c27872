"""The accounting commands parse their command line as every dirac-vm-* command does
(VMAdmin.parse_command_line): an unknown option is a usage error, exit 1 with DIRAC's message,
not DIRAC's exit 2 (which these commands keep for "the service or database could not be used")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
REFERENCE = "dirac-vm-list"  # one of the dirac-vm-* commands of the WorkloadManagementSystem


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory):
    """A host with a local cfg and nothing else configured."""
    root = tmp_path_factory.mktemp("bare")
    (root / "etc").mkdir()
    cfg = root / "etc" / "dirac.cfg"
    cfg.write_text("DIRAC\n{\n}\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
    environ.update(DIRAC_ROOT_PATH=str(root), DIRACSYSCONFIG=str(cfg))
    return environ


def usage_error(env, command: str) -> tuple[int, str]:
    """(exit code, the error line) of `command` given an unknown option."""
    res = subprocess.run(
        [str(VENV_BIN / command), "--no-such-option", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    output = res.stdout + res.stderr
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "no-such-option" in line]
    assert errors, output
    return res.returncode, errors[0].strip()


@pytest.fixture(scope="module")
def reference_error(bare_env):
    code, line = usage_error(bare_env, REFERENCE)
    assert (
        code == 1
        and line == "Error when parsing command line arguments: option --no-such-option not recognized"
    )
    return code, line


@pytest.mark.parametrize("command", ["dirac-vm-accounting-plot", "dirac-vm-accounting-upgrade"])
def test_an_unknown_option_is_the_same_usage_error_as_for_the_other_commands(
    bare_env, reference_error, command
):
    assert usage_error(bare_env, command) == reference_error
