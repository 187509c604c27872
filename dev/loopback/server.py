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

This module is the start-up sequence and the command line; its parts: config.py (the CS and
local cfg files), processes.py (components as process groups), state.py (state.json),
environment.py (interpreter, paths, a DIRAC root's environment), usercommands.py (jobs and
direct pilots, as a user and a worker node).

Just over 400 lines and kept whole: what is left is the one start-up and shut-down sequence,
whose order (MariaDB, CA, databases, services, RSS, proxy) reads best in one place.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "dev.loopback" importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "dev.loopback"

from dev.mariadb import MariaDBError, MariaDBServer, free_port

from . import config
from .certs import make_credentials
from .environment import REPO_ROOT, SITE_PACKAGES, VENV_BIN, dirac_env
from .errors import LoopbackError
from .pilotfiles import build_pilot_files
from .processes import alive, listening, spawn, stop_groups, tail, wait_listening
from .state import State, StateFile
from .usercommands import UserCommands, parse_job_status

__all__ = ["LoopbackError", "LoopbackServer", "REPO_ROOT", "VENV_BIN", "parse_job_status"]

START_TIMEOUT = 180.0

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


class LoopbackServer(UserCommands):
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
        self.state_file = StateFile(self.roots.base / "state.json")

    # --- state -------------------------------------------------------------------------------
    def state(self) -> State | None:
        return self.state_file.load()

    def _save(self, state: State) -> None:
        self.state_file.save(state)

    @property
    def endpoints(self) -> config.Endpoints:
        state = self.state()
        if state is None:
            raise LoopbackError(f"no loopback server in {self.roots.base}: run 'up' first")
        info = self.mariadb.info
        return config.Endpoints(state.ports, info.host, info.port, info.user, state.opensearch_port)

    # --- environments ------------------------------------------------------------------------
    def _base_env(self, dirac_root: Path) -> dict[str, str]:
        return dirac_env(dirac_root, self.roots.cert_dir)

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
            raise LoopbackError(f"installing databases failed, see {log}:\n{tail(log)}")

    def _sync_rss(self) -> None:
        self.run([sys.executable, "-m", "dev.loopback.rss_sync"], env=self.server_env(), cwd=REPO_ROOT)

    def _spawn(self, state: State, label: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Start a long-running component in its own process group, logging to logs/<label>.log."""
        if label in state.pids and alive(state.pids[label]):
            raise LoopbackError(f"component {label!r} already runs (pid {state.pids[label]})")
        log = self.roots.logs / f"{label}.log"
        pid = spawn(cmd, env or self.server_env(), REPO_ROOT, log, self.tied_to_parent)
        state.pids[label] = pid
        self._save(state)
        return pid

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
        stop_groups([pid])
        state.pids.pop(label)
        self._save(state)

    def check_alive(self) -> None:
        """Raise LoopbackError (with the log's tail) if a component has exited."""
        state = self.state()
        if state is not None:
            self._check_alive(state)

    def _check_alive(self, state: State) -> None:
        for label, pid in state.pids.items():
            if not alive(pid):
                log = self.roots.logs / f"{label}.log"
                raise LoopbackError(f"{label} exited; see {log}:\n{tail(log)}")

    def _wait_listening(self, state: State, wanted: dict[str, list[int]]) -> None:
        labels = wait_listening(wanted, START_TIMEOUT, lambda: self._check_alive(state))
        if labels:
            raise LoopbackError(
                f"not listening after {START_TIMEOUT:.0f} s: {labels}; logs in {self.roots.logs}"
            )

    def leftovers(self) -> list[str]:
        """What still runs or listens from this installation (empty after a clean ``down``)."""
        state = self.state()
        if state is None:
            return []
        found = [f"process {label} (pid {pid})" for label, pid in state.pids.items() if alive(pid)]
        ports = {**state.ports, "OpenSearch": state.opensearch_port}
        try:
            ports["MariaDB"] = self.mariadb.info.port
        except MariaDBError:  # never started: nothing can listen
            pass
        found += [f"port {port} ({name})" for name, port in ports.items() if listening(port)]
        if self.mariadb.is_running():
            found.append("mariadbd")
        return found

    def is_running(self) -> bool:
        state = self.state()
        return bool(state) and any(alive(pid) for pid in state.pids.values())

    def status(self) -> dict[str, str]:
        state = self.state()
        result = {"MariaDB": "running" if self.mariadb.is_running() else "stopped"}
        for label, pid in (state.pids if state else {}).items():
            result[label] = f"running (pid {pid})" if alive(pid) else "stopped"
        return result

    def down(self, purge: bool = False) -> None:
        """Stop every process ``up`` started (whole process groups) and MariaDB.

        Logs stay in ``<root>/logs`` unless ``purge``, which deletes the whole root.
        """
        state = self.state()
        stop_groups(list(reversed(state.pids.values())) if state else [])
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
