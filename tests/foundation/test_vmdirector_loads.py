"""The VMDirector agent is found by dirac-agent through the extension and runs a cycle."""

from agent_run import run_agent_once

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
    code, out = run_agent_once("WorkloadManagement/VMDirector", cfg, tmp_path, timeout=120)
    # dirac-agent exits 0 even when the cycle failed: the agent's own log lines decide.
    assert code == 0, out
    assert "Loaded agent module WorkloadManagement/VMDirector" in out, out
    assert "VMDirector cycle done" in out, out
    assert "Cycle was successful" in out, out
