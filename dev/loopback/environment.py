"""Where the loopback server's processes find Python, DIRAC and JenniferDIRAC, and the
environment a ``dirac-*`` process of one of its DIRAC roots runs in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import DIRAC

VENV_BIN = Path(sys.executable).parent
SITE_PACKAGES = Path(DIRAC.__file__).resolve().parent.parent
REPO_ROOT = Path(__file__).resolve().parents[2]


def dirac_env(dirac_root: Path, cert_dir: Path) -> dict[str, str]:
    """This process's environment without its X509_* and DIRAC* variables, pointed at dirac_root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "DIRAC"))}
    env.update(
        DIRAC_ROOT_PATH=str(dirac_root),
        X509_CERT_DIR=str(cert_dir),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        # DIRAC's JobWrapper runs realpath(sys.executable), the base interpreter of the venv.
        PYTHONPATH=os.pathsep.join([str(SITE_PACKAGES), str(REPO_ROOT)]),
        PYTHONUNBUFFERED="1",
    )
    return env
