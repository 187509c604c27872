"""A real DIRAC 9.1 server on 127.0.0.1 for the end-to-end tests and the demo.

    .venv/bin/python dev/loopback/server.py up --root DIR      # start everything, print timings
    .venv/bin/python dev/loopback/server.py status --root DIR
    eval "$(.venv/bin/python dev/loopback/server.py env --root DIR)"   # then dirac-wms-job-submit ...
    .venv/bin/python dev/loopback/server.py down --root DIR [--purge]

``up`` brings up a private MariaDB, a test CA with host and user certificates, the databases
(installed by DIRAC's ComponentInstaller from DIRAC's .sql files), an OpenSearch stand-in for
JobParametersDB, the DIPS services of the pilot flow, the Optimizers executor, synchronises the
Resource Status System and uploads a VOMS-less user proxy to the ProxyManager. All ports are
free ports chosen at start; ``DIR/state.json`` records them with the process ids, so ``down``
(from any process) stops exactly what ``up`` started. Logs are in ``DIR/logs``.

Python use (pytest): ``LoopbackServer(root).up()`` ... ``.down()``; ``client_env()`` and
``server_env()`` give the environment in which ``dirac-*`` commands talk to this server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "dev.loopback" importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "dev.loopback"

import DIRAC

from dev.mariadb import MariaDBError, MariaDBServer, die_with_parent, free_port

from . import config
from .certs import make_credentials
from .pilotfiles import build_pilot_files

VENV_BIN = Path(sys.executable).parent
SITE_PACKAGES = Path(DIRAC.__file__).resolve().parent.parent
REPO_ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT = 180.0
STOP_TIMEOUT = 20.0

# One process per group: fewer Python interpreters to start on a small machine.
SERVICE_GROUPS: dict[str, list[str]] = {
    "Configuration_Server": ["Configuration/Server"],
    "Framework": ["Framework/ProxyManager"],
    "Accounting": ["Accounting/DataStore", "Accounting/ReportGenerator"],
    "ResourceStatus": ["ResourceStatus/ResourceStatus", "ResourceStatus/ResourceManagement"],
    "WorkloadManagement": [
        "WorkloadManagement/JobManager",
        "WorkloadManagement/JobMonitoring",
        "WorkloadManagement/JobStateUpdate",
        "WorkloadManagement/Matcher",
        "WorkloadManagement/PilotManager",
        "WorkloadManagement/SandboxStore",
        "WorkloadManagement/OptimizationMind",
        "WorkloadManagement/WMSAdministrator",
    ],
}


class LoopbackError(RuntimeError):
    """The loopback server could not be started or used; the message names the log to read."""


@dataclass
class State:
    ports: dict[str, int]
    opensearch_port: int
    pids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    extra_databases: list[str] = field(default_factory=list)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG)[0] != pid
    except ChildProcessError:
        return True


def parse_job_status(text: str) -> dict[str, str]:
    """``dirac-wms-job-status`` output, e.g. "JobID=1 ApplicationStatus=Unknown; MinorStatus=Pilot
    Agent Submission; Status=Waiting; Site=ANY;", as a dict."""
    return dict(re.findall(r"(\w+)=([^;]*?)(?=;|\s\w+=|$)", text.strip()))


def _stop_groups(pids: list[int]) -> None:
    """SIGTERM each process group, wait, then SIGKILL what is left (children such as a job
    wrapper share their component's group) and reap."""
    for pid in pids:
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        while _alive(pid):
            time.sleep(0.05)


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class LoopbackServer:
    """The whole loopback installation under one directory."""

    def __init__(
        self,
        root: str | os.PathLike,
        extra_cs: list[str] | None = None,
        extra_databases: list[str] | None = None,
        tied_to_parent: bool = False,
    ) -> None:
        """``tied_to_parent``: every process stops when the process that started it dies (pytest);
        without it (the command line) the server outlives ``up``."""
        self.roots = config.Roots(Path(root).resolve())
        self.tied_to_parent = tied_to_parent
        self.extra = config.ExtraConfig(cs=list(extra_cs or []))
        self.extra_databases = list(extra_databases or [])
        self.mariadb = MariaDBServer(self.roots.base / "mariadb", tied_to_parent=tied_to_parent)
        self.state_file = self.roots.base / "state.json"

    # --- state -------------------------------------------------------------------------------
    def state(self) -> State | None:
        try:
            return State(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None

    def _save(self, state: State) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=1))

    @property
    def endpoints(self) -> config.Endpoints:
        state = self.state()
        if state is None:
            raise LoopbackError(f"no loopback server in {self.roots.base}: run 'up' first")
        info = self.mariadb.info
        return config.Endpoints(state.ports, info.host, info.port, info.user, state.opensearch_port)

    # --- environments ------------------------------------------------------------------------
    def _base_env(self, dirac_root: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "DIRAC"))}
        env.update(
            DIRAC_ROOT_PATH=str(dirac_root),
            X509_CERT_DIR=str(self.roots.cert_dir),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            # DIRAC's JobWrapper runs realpath(sys.executable), the base interpreter of the venv.
            PYTHONPATH=os.pathsep.join([str(SITE_PACKAGES), str(REPO_ROOT)]),
            PYTHONUNBUFFERED="1",
        )
        return env

    def server_env(self) -> dict[str, str]:
        """Environment of server components and admin commands (host certificate)."""
        return self._base_env(self.roots.server)

    def client_env(self) -> dict[str, str]:
        """Environment of a user with the uploaded proxy."""
        env = self._base_env(self.roots.client)
        env["X509_USER_PROXY"] = str(self.roots.proxy)
        return env

    def run(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
        cwd: str | os.PathLike | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a DIRAC command (as the user by default); output is returned, not printed."""
        env = env or self.client_env()
        res = subprocess.run(
            args,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or self.roots.base,
            stdin=subprocess.DEVNULL,
        )
        if check and res.returncode != 0:
            raise LoopbackError(
                f"{' '.join(args[:3])} failed ({res.returncode}): {(res.stdout + res.stderr)[-3000:]}"
            )
        return res

    def add_cs(self, cfg_text: str) -> None:
        """Merge CFG text into the running master CS (DIRAC's CSAPI) and resynchronise the RSS.

        For configuration known only once the server runs (a cloud CE pointing at a cloud that
        started later); components started afterwards see it.
        """
        res = subprocess.run(
            [sys.executable, "-m", "dev.loopback.cs_update"],
            input=cfg_text,
            text=True,
            env=self.server_env(),
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=120,
        )
        if res.returncode != 0:
            raise LoopbackError(f"CS update failed: {(res.stdout + res.stderr)[-2000:]}")
        self._sync_rss()

    # --- jobs and pilots ----------------------------------------------------------------------
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

    # --- life cycle --------------------------------------------------------------------------
    def up(self) -> State:
        """Start everything; on failure stop what was started and keep the logs."""
        if self.state() is not None and self.is_running():
            raise LoopbackError(f"a loopback server already runs in {self.roots.base}")
        try:
            return self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> State:
        t0 = time.monotonic()
        timings: dict[str, float] = {}

        def mark(step: str) -> None:
            timings[step] = round(time.monotonic() - t0, 1)

        self.roots.base.mkdir(parents=True, exist_ok=True)
        self.roots.logs.mkdir(exist_ok=True)
        db = self.mariadb.start()
        mark("mariadb")
        make_credentials(self.roots.grid_security, self.roots.user_dir)
        mark("certificates")

        ports = {svc: free_port() for group in SERVICE_GROUPS.values() for svc in group}
        state = State(
            ports=ports, opensearch_port=free_port(), timings=timings, extra_databases=self.extra_databases
        )
        self._save(state)
        ep = self.endpoints
        config.write_cfg(
            config.server_local_cfg(self.roots, ep, db.password),
            self.roots.server / "etc" / "dirac.cfg",
            private=True,
        )
        config.write_cfg(config.master_cs(self.roots, ep, self.extra), self.roots.cs_file)
        config.write_cfg(config.client_cfg(ep), self.roots.client / "etc" / "dirac.cfg")
        self.roots.sandboxes.mkdir(parents=True, exist_ok=True)
        build_pilot_files(
            self.roots.pilot_files, [ep.cs_url], VENV_BIN, [SITE_PACKAGES, REPO_ROOT], self.roots.cert_dir
        )
        mark("config")

        self._install_databases(list(config.DATABASES) + self.extra_databases, db)
        mark("databases")

        self._spawn(
            state,
            "OpenSearch",
            [sys.executable, "-m", "dev.loopback.opensearch", "--port", str(state.opensearch_port)],
        )
        self._spawn(state, "Configuration_Server", ["dirac-service", "Configuration/Server"])
        self._wait_listening(
            state,
            {"Configuration_Server": [ports["Configuration/Server"]], "OpenSearch": [state.opensearch_port]},
        )
        mark("cs_listening")
        for group, services in SERVICE_GROUPS.items():
            if group != "Configuration_Server":
                self._spawn(state, group, ["dirac-service", *services])
        self._wait_listening(
            state,
            {g: [ports[s] for s in svcs] for g, svcs in SERVICE_GROUPS.items()},
        )
        mark("services_listening")
        self._spawn(state, "Optimizers", ["dirac-executor", "WorkloadManagement/Optimizers"])

        self._sync_rss()
        mark("rss")
        self.run(
            [
                "dirac-proxy-init",
                "-C",
                str(self.roots.user_dir / "usercert.pem"),
                "-K",
                str(self.roots.user_dir / "userkey.pem"),
                "-g",
                config.USER_GROUP,
                "-u",
                str(self.roots.proxy),
            ],
            env=self.client_env(),
        )
        mark("proxy_uploaded")
        self._check_alive(state)
        mark("total")
        state.timings = timings
        self._save(state)
        return state

    def _install_databases(self, names: list[str], db) -> None:
        # A restarted installation keeps its data: install only what is missing.
        existing = {row[0] for row in self.mariadb.execute("SHOW DATABASES")}
        names = [name for name in names if name not in existing]
        if not names:
            return
        installer_root = self.roots.base / "dbinstall"
        config.write_cfg(
            config.CFG().loadFromDict(
                {"LocalInstallation": {"Database": {"Host": db.host, "Port": str(db.port), "User": db.user}}}
            ),
            installer_root / "etc" / "dirac.cfg",
        )
        env = self._base_env(installer_root)
        log = self.roots.logs / "install_dbs.log"
        with open(log, "w") as out:
            res = subprocess.run(
                [sys.executable, "-m", "dev.loopback.install_dbs", *names],
                input=json.dumps({"root": db.root_password, "user": db.password}),
                text=True,
                env=env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
        if res.returncode != 0:
            raise LoopbackError(f"installing databases failed, see {log}:\n{_tail(log)}")

    def _sync_rss(self) -> None:
        self.run([sys.executable, "-m", "dev.loopback.rss_sync"], env=self.server_env(), cwd=REPO_ROOT)

    def _spawn(self, state: State, label: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Start a long-running component in its own process group, logging to logs/<label>.log."""
        if label in state.pids and _alive(state.pids[label]):
            raise LoopbackError(f"component {label!r} already runs (pid {state.pids[label]})")
        log = self.roots.logs / f"{label}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                env=env or self.server_env(),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.tied_to_parent else None,
            )
        state.pids[label] = proc.pid
        self._save(state)
        return proc.pid

    def start_component(self, label: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Start another long-running component (an agent, ...) that ``down`` will stop."""
        state = self.state()
        if state is None:
            raise LoopbackError("the loopback server is not up")
        return self._spawn(state, label, cmd, env)

    def stop_component(self, label: str) -> None:
        """Stop one component started by ``start_component`` (its whole process group)."""
        state = self.state()
        pid = state.pids.get(label) if state else None
        if pid is None:
            raise LoopbackError(f"no component {label!r} in {self.roots.base}")
        _stop_groups([pid])
        state.pids.pop(label)
        self._save(state)

    def check_alive(self) -> None:
        """Raise LoopbackError (with the log's tail) if a component has exited."""
        state = self.state()
        if state is not None:
            self._check_alive(state)

    def _check_alive(self, state: State) -> None:
        for label, pid in state.pids.items():
            if not _alive(pid):
                log = self.roots.logs / f"{label}.log"
                raise LoopbackError(f"{label} exited; see {log}:\n{_tail(log)}")

    def _wait_listening(self, state: State, wanted: dict[str, list[int]]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pending = {(label, port) for label, ports in wanted.items() for port in ports}
        while pending:
            self._check_alive(state)
            pending = {(label, port) for label, port in pending if not _listening(port)}
            if not pending:
                return
            if time.monotonic() > deadline:
                labels = sorted({label for label, _ in pending})
                raise LoopbackError(
                    f"not listening after {START_TIMEOUT:.0f} s: {labels}; logs in {self.roots.logs}"
                )
            time.sleep(0.2)

    def leftovers(self) -> list[str]:
        """What still runs or listens from this installation (empty after a clean ``down``)."""
        state = self.state()
        if state is None:
            return []
        found = [f"process {label} (pid {pid})" for label, pid in state.pids.items() if _alive(pid)]
        ports = {**state.ports, "OpenSearch": state.opensearch_port}
        try:
            ports["MariaDB"] = self.mariadb.info.port
        except MariaDBError:  # never started: nothing can listen
            pass
        found += [f"port {port} ({name})" for name, port in ports.items() if _listening(port)]
        if self.mariadb.is_running():
            found.append("mariadbd")
        return found

    def is_running(self) -> bool:
        state = self.state()
        return bool(state) and any(_alive(pid) for pid in state.pids.values())

    def status(self) -> dict[str, str]:
        state = self.state()
        result = {"MariaDB": "running" if self.mariadb.is_running() else "stopped"}
        for label, pid in (state.pids if state else {}).items():
            result[label] = f"running (pid {pid})" if _alive(pid) else "stopped"
        return result

    def down(self, purge: bool = False) -> None:
        """Stop every process ``up`` started (whole process groups) and MariaDB.

        Logs stay in ``<root>/logs`` unless ``purge``, which deletes the whole root.
        """
        state = self.state()
        _stop_groups(list(reversed(state.pids.values())) if state else [])
        self.mariadb.stop()
        if purge:
            shutil.rmtree(self.roots.base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("--root", required=True, help="directory for all state, configuration and logs")
    parser.add_argument("--purge", action="store_true", help="with down: delete the root directory")
    parser.add_argument("--extra-cs", action="append", default=[], help="CFG file merged into the master CS")
    args = parser.parse_args(argv)
    server = LoopbackServer(args.root, extra_cs=[Path(p).read_text() for p in args.extra_cs])
    try:
        if args.action == "up":
            state = server.up()
            ep = server.endpoints
            print(f"loopback DIRAC server up; CS {ep.cs_url}")
            print("timings (s since start): " + ", ".join(f"{k}={v}" for k, v in state.timings.items()))
            print(
                f"client: DIRAC_ROOT_PATH={server.roots.client} X509_USER_PROXY={server.roots.proxy} "
                f"X509_CERT_DIR={server.roots.cert_dir}"
            )
        elif args.action == "down":
            server.down(purge=args.purge)
        elif args.action == "env":
            # eval "$(server.py env --root DIR)": a shell where dirac-* commands act as the user
            env = server.client_env()
            for key in ("DIRAC_ROOT_PATH", "X509_CERT_DIR", "X509_USER_PROXY", "PATH", "PYTHONPATH"):
                print(f"export {key}={shlex.quote(env[key])}")
        else:
            for label, status in server.status().items():
                print(f"{label}: {status}")
    except LoopbackError as exc:
        print(f"loopback: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
