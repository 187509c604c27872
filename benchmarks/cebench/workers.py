"""What the CE benchmarks share around their measurements: one worker process per measurement
(a fresh interpreter: one CE kind's imports and caches do not weigh on the other's figures),
progress lines, quiet CE logging, and the environment the figures were measured in."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def quiet_ce_logging() -> None:
    """The CEs log every VM they touch; the benchmarks report their own figures."""
    from DIRAC import gLogger

    gLogger.setLevel("ERROR")
    logging.getLogger("openstack").setLevel(logging.ERROR)


def run_worker(argv: list[str], output: Path, what: str, timeout_s: float) -> dict:
    """Run one worker process (`argv`), which writes its figures as JSON to `output`; its output
    is shown if it fails."""
    completed = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout_s)
    if completed.returncode != 0 or not output.exists():
        sys.stderr.write(completed.stdout[-4000:])
        raise RuntimeError(f"the worker for {what} failed (exit {completed.returncode})")
    return json.loads(output.read_text())


def environment() -> dict:
    from importlib.metadata import version

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": len(os.sched_getaffinity(0)), "git_commit": commit,
            **{name: version(name) for name in ("DIRAC", "apache-libcloud", "openstacksdk")}}
