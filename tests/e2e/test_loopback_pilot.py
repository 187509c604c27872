"""A real DIRAC 9.1 server on loopback runs a user's job through a pilot (no cloud yet).

The pilot is DIRAC's own pilot wrapper (``PilotWrapper.pilotWrapperScript``, as the SiteDirector
writes it, with the pilot proxy from the ProxyManager bundled). It downloads the pilot files from
``/Operations/Defaults/Pilot/pilotFileServer``; offline, the real DIRACGrid pilot cannot be
fetched, so those files hold the project's stand-in ``dirac-pilot.py`` (dev/loopback/pilot),
which configures the preinstalled DIRAC and runs the real ``WorkloadManagement/JobAgent``.
The worker node environment is the one a cloud VM gives: ``PILOT_UUID`` and ``DIRAC_PILOT_STAMP``.
"""

import secrets
import time

import pytest

from dev.loopback.jobs import job_jdl

HELLO_JDL = job_jdl("hello", "/bin/echo", "hello from the loopback server")

pytestmark = pytest.mark.slow


def test_every_component_runs(dirac_server):
    status = dirac_server.status()
    assert status.pop("MariaDB") == "running"
    assert set(status) >= {
        "Configuration_Server",
        "Framework",
        "ResourceStatus",
        "WorkloadManagement",
        "Optimizers",
        "OpenSearch",
    }
    assert all(s.startswith("running") for s in status.values()), status


def test_database_password_is_not_served_by_the_cs(dirac_server):
    served = dirac_server.roots.cs_file.read_text()
    assert dirac_server.mariadb.password not in served
    assert dirac_server.mariadb.info.root_password not in served


def test_job_runs_through_a_pilot_and_pilotagentsdb_links_them(dirac_server, tmp_path):
    started = time.monotonic()
    job_id = dirac_server.submit_job(HELLO_JDL)
    dirac_server.wait_job_status(job_id, {"Waiting"}, timeout=60)

    ref = f"direct://loopback/{secrets.token_hex(4)}"
    stamp = secrets.token_hex(16)
    wrapper = dirac_server.prepare_direct_pilot(
        ref,
        stamp,
        tmp_path / "wrapper.sh",
        options=["-M 1", "--StopAfterFailedMatches=1", "--PollingTime=1"],
    )
    result = dirac_server.run_pilot_wrapper(wrapper, ref, stamp, tmp_path / "wn", timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"pilot reference={ref} stamp={stamp} flavour=CLOUD" in result.stdout

    status = dirac_server.wait_job_status(job_id, {"Done"}, timeout=60)
    assert status["Site"] == "CLOUD.Loopback.local"
    output = dirac_server.get_output(job_id, tmp_path / "out")
    assert (output / "std.out").read_text().strip() == "hello from the loopback server"

    rows = dirac_server.mariadb.execute(
        "SELECT p.PilotStamp, p.Status, p.CurrentJobID, m.JobID FROM PilotAgents p "
        "JOIN JobToPilotMapping m ON m.PilotID = p.PilotID WHERE p.PilotJobReference = %s",
        database="PilotAgentsDB",
        params=(ref,),
    )
    assert rows == [(stamp, "Done", job_id, job_id)]
    print(f"\njob {job_id}: submitted -> Done with output in {time.monotonic() - started:.1f} s")


def test_pilot_without_preinstalled_environment_fails_loudly(dirac_server, tmp_path):
    ref = f"direct://loopback/{secrets.token_hex(4)}"
    stamp = secrets.token_hex(16)
    wrapper = dirac_server.prepare_direct_pilot(
        ref, stamp, tmp_path / "wrapper.sh", options=["--preinstalledEnv=/nonexistent/diracosrc"]
    )
    result = dirac_server.run_pilot_wrapper(wrapper, ref, stamp, tmp_path / "wn", timeout=120)
    assert result.returncode != 0
    assert "preinstalled environment script /nonexistent/diracosrc not found" in result.stdout
