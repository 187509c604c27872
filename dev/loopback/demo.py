"""The whole flow on one machine: a user's job runs in a cloud VM that JenniferDIRAC booted.

    .venv/bin/python -m dev.loopback.demo [--root DIR] [--keep]

Starts the loopback DIRAC server, a LocalCloud that boots VMs, the cloud site (CE, SiteDirector,
VMDirector, VM endpoint), submits a job with ``dirac-wms-job-submit`` and follows it: pilot VM
created, job Done, output sandbox, pilot Done, VM deleted, VM accounted, and writes the DIRAC
accounting plots of that job and VM (PNG + CSV, ``--plots``). Everything is stopped at
the end; ``--keep`` (or a failure) keeps DIR with the logs of every component.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "dev.loopback"

from . import jobs
from .cloudsite import CE, SITE, attach_cloud, configure_cloud_site, start_cloud_agents, stop_cloud_agents
from .server import LoopbackServer

JDL = jobs.job_jdl("demo", "/bin/sh", "-c 'echo hello from $(hostname), a JenniferDIRAC cloud VM'")
TIMEOUT = 600.0
#: where the demo's accounting plots stay (the demo's directory is deleted unless --keep)
PLOTS = Path(__file__).resolve().parents[2] / "var" / "demo-plots"


class Step:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] {message}", flush=True)


def wait_for(what: str, probe, timeout: float = TIMEOUT):
    return jobs.wait_for(what, probe, timeout)


def run(root: Path, plots: Path = PLOTS) -> None:
    from JenniferLocalCloud import LocalCloud

    step = Step()
    started = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0)
    server = LoopbackServer(root, tied_to_parent=True)
    step(f"starting the DIRAC server in {root}")
    state = server.up()
    step(f"DIRAC server up ({state.timings['total']} s): CS {server.endpoints.cs_url}")
    cloud = LocalCloud(boot=True, sandbox_root=root / "vms")
    try:
        attach_cloud(server, cloud)
        cloud.start()
        port = configure_cloud_site(server, cloud)
        start_cloud_agents(server, port)
        step(f"LocalCloud at {cloud.base_url}; CE {CE} with SiteDirector, VMDirector, VM endpoint")

        job_id = server.submit_job(JDL)
        step(f"job {job_id} submitted")

        def pilots():
            return server.mariadb.execute(
                "SELECT PilotJobReference, PilotStamp, Status FROM PilotAgents WHERE DestinationSite = %s",
                database="PilotAgentsDB",
                params=(CE,),
            )

        ref, stamp, _ = wait_for("pilot submitted", pilots)[0]
        step(f"pilot {ref} (stamp {stamp}) submitted as a VM")
        server.wait_job_status(job_id, {"Running", "Completing", "Done"}, timeout=TIMEOUT)
        step(f"job {job_id} running in the VM")
        server.wait_job_status(job_id, {"Done"}, timeout=TIMEOUT)
        output = server.get_output(job_id, root / "output")
        step(f"job {job_id} Done; std.out: {(output / 'std.out').read_text().strip()}")
        wait_for("pilot Done", lambda: any(p[0] == ref and p[2] == "Done" for p in pilots()))
        step(f"pilot {ref} Done")
        vm_name = ref.rsplit("/", 1)[1]
        wait_for(
            "VM deleted",
            # list(): a snapshot, the cloud's threads add and remove servers meanwhile
            lambda: all(s.status == "DELETED" for s in list(cloud.compute.servers.values())
                        if s.name == vm_name),
        )
        step(f"VM {vm_name} powered off and deleted")
        wait_for(
            "VM accounted",
            lambda: server.mariadb.execute(
                "SELECT Accounted FROM VMs WHERE VMName = %s AND Accounted = 1",
                database="VMDB",
                params=(vm_name,),
            ),
        )
        step(f"VM {vm_name} accounted")
        for plot in write_accounting_plots(server, plots, started):
            step(f"accounting plot {plot} (figures in {plot.with_suffix('.csv').name})")
    finally:
        if server.state() is not None:
            stop_cloud_agents_quietly(server)
        cloud.stop()
        server.down()


def write_accounting_plots(server: LoopbackServer, directory: Path, since: datetime) -> list[Path]:
    """The demo's own job and VM as DIRAC accounting plots, once the DataStore has bucketed them."""
    start, end = since - timedelta(hours=1), datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=5)
    checks = [["VirtualMachine", "TotalVMs", "CE", {CE: 1.0}], ["Job", "TotalNumberOfJobs", "Site", {SITE: 1.0}]]
    probe = json.dumps({"start": start.isoformat(), "end": end.isoformat(), "timeout": 300, "checks": checks})
    waited = subprocess.run(
        [sys.executable, "-m", "dev.loopback.accounting_probe"],
        input=probe, env=server.server_env(), cwd=Path(__file__).resolve().parents[2],
        capture_output=True, text=True, timeout=360,
    )
    if waited.returncode != 0:
        raise RuntimeError(f"accounting records not in the reports: {(waited.stdout + waited.stderr)[-2000:]}")
    span = ["--start", start.strftime("%Y-%m-%d %H:%M"), "--end", end.strftime("%Y-%m-%d %H:%M")]
    plots = []
    for name, args in (
        ("demo-vm-walltime-by-ce", ["--plot", "WallTime", "--group", "CE"]),
        # The demo's job runs for a second: its count shows, its wall time would round to 0.
        ("demo-job-count-by-site", ["--type", "Job", "--plot", "CumulativeNumberOfJobs", "--group", "Site"]),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        server.run(["dirac-vm-accounting-plot", *args, *span, "--output", str(directory / f"{name}.png")])
        plots.append(directory / f"{name}.png")
    return plots


def stop_cloud_agents_quietly(server: LoopbackServer) -> None:
    try:
        stop_cloud_agents(server)
    except Exception as exc:  # noqa: BLE001 - teardown goes on; server.down stops the rest
        print(f"stopping the cloud agents: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", help="directory for everything (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the directory (logs) afterwards")
    parser.add_argument("--plots", default=str(PLOTS), help=f"accounting plots of the demo (default {PLOTS})")
    args = parser.parse_args(argv)
    root = Path(args.root or tempfile.mkdtemp(prefix="jdirac-demo-")).resolve()
    try:
        run(root, Path(args.plots).resolve())
    except Exception as exc:  # noqa: BLE001 - report, keep the logs
        print(f"demo failed: {exc}\nlogs kept in {root / 'logs'}", file=sys.stderr)
        return 1
    if args.keep:
        print(f"everything kept in {root}")
    else:
        LoopbackServer(root).down(purge=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
