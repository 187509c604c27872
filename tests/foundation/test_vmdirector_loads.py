"""The VMDirector agent is found by dirac-agent through the extension and runs a cycle."""

import os
import subprocess
import sys
from pathlib import Path

AGENT_CFG = """
DIRAC
{
  Security
  {
    UseServerCertificate = no
  }
}
LocalSite
{
  Site = DIRAC.Test.org
}
"""


def test_dirac_agent_runs_one_cycle_without_ces(tmp_path):
    cfg = tmp_path / "agent.cfg"
    cfg.write_text(AGENT_CFG)
    env = dict(os.environ, DIRAC_ROOT_PATH=str(tmp_path))
    env.pop("DIRACSYSCONFIG", None)
    dirac_agent = Path(sys.executable).parent / "dirac-agent"
    proc = subprocess.run(
        [
            str(dirac_agent),
            "WorkloadManagement/VMDirector",
            "--cfg",
            str(cfg),
            "-o",
            "MaxCycles=1",
            "-o",
            "LogOutputs=stdout",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    # dirac-agent exits 0 even when the cycle failed: the agent's own log lines decide.
    assert proc.returncode == 0, out
    assert "Loaded agent module WorkloadManagement/VMDirector" in out, out
    assert "VMDirector cycle done" in out, out
    assert "Cycle was successful" in out, out
