"""What a user and a worker node do against the loopback server: submit a job, follow its
status, fetch its output; record a pilot directly and run its wrapper as a worker node would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import config
from .environment import REPO_ROOT
from .errors import LoopbackError


def parse_job_status(text: str) -> dict[str, str]:
    """``dirac-wms-job-status`` output, e.g. "JobID=1 ApplicationStatus=Unknown; MinorStatus=Pilot
    Agent Submission; Status=Waiting; Site=ANY;", as a dict."""
    return dict(re.findall(r"(\w+)=([^;]*?)(?=;|\s\w+=|$)", text.strip()))


class UserCommands:
    """Part of LoopbackServer: needs its ``roots``, ``run`` and ``server_env``."""

    def submit_job(self, jdl: str) -> int:
        """``dirac-wms-job-submit`` as the user; returns the job id."""
        path = self.roots.client / f"job-{time.time_ns()}.jdl"
        path.write_text(jdl)
        out = self.run(["dirac-wms-job-submit", str(path)]).stdout
        match = re.search(r"JobID\s*=\s*(\d+)", out)
        if not match:
            raise LoopbackError(f"dirac-wms-job-submit printed no JobID: {out[-1000:]}")
        return int(match.group(1))

    def job_status(self, job_id: int) -> dict[str, str]:
        """``dirac-wms-job-status`` parsed: Status, MinorStatus, Site, ..."""
        return parse_job_status(self.run(["dirac-wms-job-status", str(job_id)]).stdout)

    def wait_job_status(
        self,
        job_id: int,
        wanted: set[str],
        timeout: float = 120,
        fail_on: frozenset[str] = frozenset({"Failed", "Killed", "Deleted"}),
    ) -> dict[str, str]:
        """Poll the job's status until it is one of ``wanted`` (or a final failure, or the deadline)."""
        deadline = time.monotonic() + timeout
        status: dict[str, str] = {}
        while time.monotonic() < deadline:
            status = self.job_status(job_id)
            if status.get("Status") in wanted:
                return status
            if status.get("Status") in fail_on - wanted:
                raise LoopbackError(f"job {job_id} ended {status}; logs in {self.roots.logs}")
            time.sleep(1)
        raise LoopbackError(f"job {job_id} not in {sorted(wanted)} after {timeout:.0f} s: {status}")

    def get_output(self, job_id: int, directory: str | os.PathLike) -> Path:
        """``dirac-wms-job-get-output``; returns the directory holding the output sandbox."""
        self.run(["dirac-wms-job-get-output", "-D", str(directory), str(job_id)])
        return Path(directory) / str(job_id)

    def prepare_direct_pilot(
        self,
        ref: str,
        stamp: str,
        wrapper: str | os.PathLike,
        ce: str = config.DIRECT_CE,
        queue: str = config.DIRECT_QUEUE,
        options: list[str] | None = None,
    ) -> Path:
        """Record a pilot in PilotAgentsDB and write DIRAC's pilot wrapper for it (see direct_pilot)."""
        cmd = [
            sys.executable,
            "-m",
            "dev.loopback.direct_pilot",
            "--ref",
            ref,
            "--stamp",
            stamp,
            "--ce",
            ce,
            "--queue",
            queue,
            "--out",
            str(wrapper),
        ]
        cmd += [f"--option={opt}" for opt in options or []]
        self.run(cmd, env=self.server_env(), cwd=REPO_ROOT)
        return Path(wrapper)

    def run_pilot_wrapper(
        self,
        wrapper: str | os.PathLike,
        ref: str,
        stamp: str,
        workdir: str | os.PathLike,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """Run a pilot wrapper as a worker node would: clean environment, PILOT_UUID and stamp set."""
        Path(workdir).mkdir(parents=True, exist_ok=True)
        env = {
            "HOME": str(workdir),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PILOT_UUID": ref,
            "DIRAC_PILOT_STAMP": stamp,
        }
        proc = subprocess.Popen(
            ["bash", str(wrapper)],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the JobAgent and its job wrapper too
            out, _ = proc.communicate()
            raise LoopbackError(
                f"pilot wrapper still running after {timeout:.0f} s:\n{out[-3000:]}"
            ) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
