"""One cycle of a DIRAC agent, run as DIRAC runs it: ``dirac-agent`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DIRAC_AGENT = Path(sys.executable).parent / "dirac-agent"


def run_agent_once(agent: str, cfg: Path, root: Path, timeout: float, cycles: int = 1) -> tuple[int, str]:
    """``dirac-agent <agent> --cfg <cfg>`` for one cycle (or `cycles`), logging to stdout, with `root` as
    DIRAC's root and working directory and no DIRACSYSCONFIG: (exit code, stdout + stderr)."""
    env = dict(os.environ, DIRAC_ROOT_PATH=str(root))
    env.pop("DIRACSYSCONFIG", None)
    proc = subprocess.run(
        [str(DIRAC_AGENT), agent, "--cfg", str(cfg), "-o", f"MaxCycles={cycles}", "-o", "LogOutputs=stdout"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr
