"""The VM endpoint under attack: honest VMs' success rate and p99 latency, and the server's
threads and RSS, while one hostile VM (or anyone on the network) does each of:

    (a) 1,000 idle sockets           connect and send nothing
    (b) 70 slow uploads              one VM's token, PUT logs with one byte every 1.5 s
    (c) pathological shutdown msgs   8 at a time, "200" + 1020 spaces + "\\x01" (1 KiB each)
    (d) heartbeat flood              8 clients POSTing heartbeats as fast as they can

The server runs in its own process (the endpoint app + server with the shipped defaults over a
real VMDB on a private MariaDB), a fresh one per phase, so its thread count and RSS are its own.
Each phase: 16 VMs warm the server up, the attack starts, runs ``--settle`` seconds, then 40
honest VMs (8 at a time) each send a heartbeat, upload a 4.6 KB boot log and read their MJF
shutdowntime; a request counts as a success if it gets its expected answer (204, 204, 200) within
10 s, first try. ``--old`` also runs
v0.1.0's endpoint code (``git archive`` of the v0.1.0 commit into a temporary directory, first on
PYTHONPATH) and prints both side by side::

    .venv/bin/python benchmarks/bench_endpoint_attack.py            # this tree only
    .venv/bin/python benchmarks/bench_endpoint_attack.py --old      # and v0.1.0 beside it
    .venv/bin/python benchmarks/bench_endpoint_attack.py --honest-vms 100

tests/endpoint/test_endpoint_attack.py runs the same phases (shorter) in CI and asserts the honest
success rate and generous bounds on threads and RSS; the latencies are figures, not assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

V010_COMMIT = "e6bb08aa10569866f259229f46cdc83f5ddc75d8"  # "release.notes for v0.1.0"
SECRET_LINE = "attack-bench-secret-0123456789abcdefghijklmnop"
PATHOLOGICAL = b"200" + b" " * 1020 + b"\x01"

#: The server process: the endpoint with the shipped defaults over VMDB; the same lines work with
#: v0.1.0's code (same constructors) and this tree's.
LAUNCHER = r"""
import sys
from diraccfg import CFG
from DIRAC import gConfig
gConfig.loadCFG(CFG().loadFromBuffer(open(sys.argv[1]).read()))
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB
try:
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import VMStateStore
except ImportError:  # v0.1.0's layout
    from JenniferDIRAC.WorkloadManagementSystem.Utilities.VMTokens import TokenAuthority
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpoint.app import EndpointLimits, VMEndpointApp
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpoint.server import EndpointServer
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpoint.store import VMStateStore
import JenniferDIRAC
app = VMEndpointApp(TokenAuthority.from_secret_file(sys.argv[2]), VMStateStore(VMDB()), EndpointLimits())
server = EndpointServer(app, "127.0.0.1", 0)
server.start()
print("READY", server.port, JenniferDIRAC.__file__, flush=True)
sys.stdin.read()
server.stop()
"""


# --- the server process ----------------------------------------------------------------------------
@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    url: str
    package: str

    def status(self) -> tuple[int, float]:
        """(threads, RSS in MiB) of the server process now."""
        threads, rss_kib = 0, 0
        with open(f"/proc/{self.process.pid}/status") as handle:
            for line in handle:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss_kib = int(line.split()[1])
        return threads, rss_kib / 1024


@contextlib.contextmanager
def serve(vmdb_cfg: str, workdir: Path, code_root: Path | None = None) -> Iterator[ServerProcess]:
    """Start the endpoint in a child process (v0.1.0's code when `code_root` holds it)."""
    cfg = workdir / "vmdb.cfg"
    cfg.write_text(vmdb_cfg)
    secret = workdir / "endpoint.secret"
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(SECRET_LINE + "\n")
    env = dict(os.environ)
    if code_root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log = open(workdir / f"server-{uuid.uuid4().hex[:6]}.log", "w+")
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(cfg), str(secret)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=log, text=True, cwd=workdir, env=env)
    try:
        seen = []
        for line in process.stdout:  # gLogger writes to stdout too
            if line.startswith("READY"):
                break
            seen.append(line)
        else:
            log.seek(0)
            raise RuntimeError(f"endpoint did not start: {''.join(seen)[-2000:]} {log.read()[-3000:]}")
        threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()  # keep the pipe drained
        _, port, package = line.split()
        yield ServerProcess(process, int(port), f"http://127.0.0.1:{port}", package)
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


def old_code_root(workdir: Path) -> Path:
    """v0.1.0's JenniferDIRAC package, extracted from git into `workdir`/v010."""
    root = workdir / "v010"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", V010_COMMIT, "JenniferDIRAC"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


# --- the honest VMs ----------------------------------------------------------------------------------
@dataclass
class HonestFigures:
    attempted: int = 0
    succeeded: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return 100.0 * self.succeeded / self.attempted if self.attempted else 0.0

    @property
    def p99_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def token_for(vm_name: str) -> str:
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority

    return TokenAuthority([SECRET_LINE.encode()]).issue(vm_name, 3600)


def register(db, names: list[str]) -> dict[str, str]:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    records = [{"vm_name": n, "vm_id": "id-" + n, "ce": "CLOUD.Attack.org", "site": "CLOUD.Attack.org", "vo": "vo",
                "profile": "p", "pilot_reference": f"cloud://CLOUD.Attack.org/{n}", "stamp": "0" * 32,
                "flavor": "m1.small", "cores": 1, "ram_mb": 2048, "created": now} for n in names]
    result = db.recordVMs(records)
    assert result["OK"], result.get("Message")
    return {n: token_for(n) for n in names}


def honest_traffic(url: str, tokens: dict[str, str], timeout: float = 10.0) -> HonestFigures:
    """What each honest VM does, once: heartbeat, boot log upload, MJF shutdowntime; 8 at a time."""
    figures = HonestFigures()
    lock = threading.Lock()
    log = b"cloud-init output line\n" * 200  # 4.6 KB

    def one_vm(name: str) -> None:
        headers = {"Authorization": f"Bearer {tokens[name]}"}
        calls = (("POST", "heartbeat", b"0.10 0.20 0.30 1/100 4242", 204), ("PUT", "logs/boot", log, 204),
                 ("GET", "context/shutdowntime", None, 200))
        with requests.Session() as session:
            for method, path, body, expected in calls:
                started = time.monotonic()
                try:
                    status = session.request(method, f"{url}/vm/v1/{name}/{path}", data=body, headers=headers,
                                             timeout=timeout).status_code
                except requests.RequestException:
                    status = 0
                elapsed = time.monotonic() - started
                with lock:
                    figures.attempted += 1
                    figures.latencies.append(elapsed)
                    figures.succeeded += status == expected

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one_vm, tokens))
    return figures


# --- the attacks -------------------------------------------------------------------------------------
class Attack:
    """Started before the honest traffic, stopped after it."""

    name = ""

    def __init__(self, server: ServerProcess, db):
        self.server, self.db = server, db
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []

    def spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)

    def connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        except OSError:
            return None
        self.sockets.append(sock)
        return sock

    def start(self) -> None:
        pass

    def detail(self) -> str:
        return ""

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


class NoAttack(Attack):
    name = "none (baseline)"


class IdleSockets(Attack):
    name = "(a) 1,000 idle sockets"

    def start(self) -> None:
        for _ in range(1000):
            self.connect()

    def detail(self) -> str:
        return f"{len(self.sockets)} sockets opened"


class SlowUploads(Attack):
    name = "(b) 70 slow uploads, one VM"

    def start(self) -> None:
        hog = f"jdirac-hog{uuid.uuid4().hex[:8]}"
        token = register(self.db, [hog])[hog]
        for i in range(70):
            sock = self.connect()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.sendall(f"PUT /vm/v1/{hog}/logs/l{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                                 f"Content-Length: 100000\r\n\r\nx".encode())

        def drip() -> None:
            while not self.stop.wait(1.5):
                for sock in list(self.sockets):
                    with contextlib.suppress(OSError):
                        sock.sendall(b"x")

        self.spawn(drip)

    def detail(self) -> str:
        return f"{len(self.sockets)} uploads started"


class PathologicalShutdownMessages(Attack):
    name = "(c) 8 pathological shutdown msgs"

    def start(self) -> None:
        names = [f"jdirac-sd{uuid.uuid4().hex[:8]}" for _ in range(8)]
        tokens = register(self.db, names)
        self.sent = 0

        def send(name: str) -> None:
            with requests.Session() as session:
                while not self.stop.is_set():
                    with contextlib.suppress(requests.RequestException):
                        session.put(f"{self.server.url}/vm/v1/{name}/shutdown_message", data=PATHOLOGICAL,
                                    headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=30)
                        self.sent += 1

        for name in names:
            self.spawn(lambda name=name: send(name))

    def detail(self) -> str:
        return f"{self.sent} messages answered"


class HeartbeatFlood(Attack):
    name = "(d) heartbeat flood"

    def start(self) -> None:
        flooder = f"jdirac-flood{uuid.uuid4().hex[:8]}"
        token = register(self.db, [flooder])[flooder]
        self.sent = 0

        def flood() -> None:
            with requests.Session() as session:
                while not self.stop.is_set():
                    with contextlib.suppress(requests.RequestException):
                        session.post(f"{self.server.url}/vm/v1/{flooder}/heartbeat", data=b"1.0",
                                     headers={"Authorization": f"Bearer {token}"}, timeout=30)
                        self.sent += 1

        for _ in range(8):
            self.spawn(flood)

    def detail(self) -> str:
        return f"{self.sent} heartbeats answered"


ATTACKS = (NoAttack, IdleSockets, SlowUploads, PathologicalShutdownMessages, HeartbeatFlood)


@dataclass
class PhaseFigures:
    attack: str
    honest: HonestFigures
    max_threads: int
    max_rss_mib: float
    detail: str = ""


def run_phase(server: ServerProcess, db, attack_class, honest_vms: int, settle_seconds: float = 1.0) -> PhaseFigures:
    attack = attack_class(server, db)
    samples: list[tuple[int, float]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            with contextlib.suppress(OSError):
                samples.append(server.status())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Warm up first (worker threads, database connections), as a long-running endpoint is.
    honest_traffic(server.url, register(db, [f"jdirac-warm{uuid.uuid4().hex[:10]}" for _ in range(16)]))
    tokens = register(db, [f"jdirac-honest{uuid.uuid4().hex[:10]}" for _ in range(honest_vms)])
    try:
        attack.start()
        time.sleep(settle_seconds)  # let the attack take hold (not synchronisation: a load phase)
        honest = honest_traffic(server.url, tokens)
        detail = attack.detail()
    finally:
        attack.finish()
        sampling.set()
        sampler.join(timeout=5)
    with contextlib.suppress(OSError):
        samples.append(server.status())
    return PhaseFigures(attack.name, honest, max(t for t, _ in samples), max(r for _, r in samples), detail)


def table(columns: dict[str, list[PhaseFigures]]) -> str:
    lines = []
    header = f"{'attack':<36}" + "".join(f" | {label:^44}" for label in columns)
    sub = f"{'':<36}" + "".join(f" | {'honest ok':>10} {'p99 ms':>10} {'threads':>8} {'RSS MiB':>9}" for _ in columns)
    lines += [header, sub, "-" * len(sub)]
    for row in zip(*columns.values()):
        line = f"{row[0].attack:<36}"
        for phase in row:
            line += (f" | {phase.honest.success_rate:9.1f}% {phase.honest.p99_ms:10.0f} {phase.max_threads:8d}"
                     f" {phase.max_rss_mib:9.1f}")
        details = [f"{label}: {phase.detail}" for label, phase in zip(columns, row) if phase.detail]
        lines.append(line + (f"   ({'; '.join(details)})" if details else ""))
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", action="store_true", help="also measure v0.1.0's endpoint code")
    parser.add_argument("--honest-vms", type=int, default=40, help="honest VMs per phase (3 requests each)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds an attack runs before honest traffic")
    args = parser.parse_args()

    from diraccfg import CFG
    from DIRAC import gConfig

    from dev.mariadb import MariaDBServer

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        workdir = Path(tmp)
        mariadb = MariaDBServer(workdir / "mariadb", tied_to_parent=True)
        mariadb.start()
        try:
            columns: dict[str, list[PhaseFigures]] = {}
            for label, code_root in (("v0.1.0", old_code_root(workdir)) if args.old else (None, None),
                                     ("this tree", None)):
                if label is None:
                    continue
                dbname = "VMDB_bench_" + uuid.uuid4().hex[:8]
                mariadb.create_database(dbname)
                cfg_text = (
                    "Systems\n{\n  Databases\n  {\n"
                    f"    User = {mariadb.user}\n    Password = {mariadb.password}\n"
                    f"    Host = {mariadb.host}\n    Port = {mariadb.port}\n  }}\n"
                    "  WorkloadManagement\n  {\n    Databases\n    {\n      VMDB\n      {\n"
                    f"        DBName = {dbname}\n      }}\n    }}\n  }}\n}}\n"
                )
                gConfig.loadCFG(CFG().loadFromBuffer(cfg_text))
                from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

                db = VMDB()
                server_dir = workdir / ("server-" + label.replace(" ", "-"))
                server_dir.mkdir()
                columns[label] = []
                for attack in ATTACKS:
                    # A fresh server per phase: what one attack left behind (v0.1.0 still parsing
                    # shutdown messages) does not count against the next.
                    with serve(cfg_text, server_dir, code_root) as server:
                        columns[label].append(run_phase(server, db, attack, args.honest_vms, args.settle))
                        print(f"{label}: {attack.name} done (endpoint code from {server.package})", flush=True)
            print()
            print(table(columns))
        finally:
            mariadb.destroy()


if __name__ == "__main__":
    main()
