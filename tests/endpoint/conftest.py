"""A running VM endpoint on 127.0.0.1 backed by a real VMDB on the private MariaDB."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
import requests
from waiting import wait_until

SECRET = b"endpoint-test-secret-0123456789abcdef"


class Clock:
    """A settable clock shared by the token authority and the endpoint."""

    def __init__(self):
        import time

        self.now = time.time()

    def __call__(self):
        return self.now


def vm_record(name, ce="CLOUD.Cloud-A.uk"):
    return {
        "vm_name": name,
        "vm_id": "id-" + name,
        "ce": ce,
        "site": "CLOUD.Cloud-A.uk",
        "vo": "belle",
        "profile": "BelleII",
        "pilot_reference": f"cloud://{ce}/{name}",
        "stamp": "0" * 32,
        "flavor": "m1.large",
        "cores": 4,
        "ram_mb": 8192,
        "created": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    }


DEFAULT_TEST_LIMITS = dict(
    max_upload_bytes=64 * 1024, max_bytes_per_vm=160 * 1024, max_logs_per_vm=4,
    min_heartbeat_seconds=10, max_concurrent_requests=16,
)


@pytest.fixture
def live_endpoint(vmdb):
    """A VM endpoint on 127.0.0.1 over this test's VMDB, as the boot tests' VMs reach it:
    (server, its token authority, the VMDB, the app)."""
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import VMStateStore

    authority = TokenAuthority([SECRET])
    app = VMEndpointApp(authority, VMStateStore(vmdb.db), EndpointLimits(min_heartbeat_seconds=5))
    server = EndpointServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield server, authority, vmdb.db, app
    finally:
        server.stop()


@pytest.fixture
def make_endpoint(vmdb, tmp_path):
    """make_endpoint(bounds=ServerBounds(...), **EndpointLimits fields) -> a served endpoint
    (namespace: url, server, app, clock, authority, db, register, call, events, limits, session)."""
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import VMStateStore

    started = []

    def make(bounds=None, **limit_fields):
        clock = Clock()
        authority = TokenAuthority([SECRET], clock=clock)
        context_dir = tmp_path / f"context{len(started)}"
        context_dir.mkdir()
        (context_dir / "machinefeatures.json").write_text('{"hs06": 10}\n')
        (tmp_path / "outside.txt").write_text("must never be served\n")
        os.symlink(tmp_path / "outside.txt", context_dir / "escape.txt")
        limits = EndpointLimits(**{**DEFAULT_TEST_LIMITS, **limit_fields})
        events = []
        app = VMEndpointApp(
            authority, VMStateStore(vmdb.db), limits, context_dir=context_dir, clock=clock,
            log=lambda level, message: events.append((level, message)),
        )
        server = EndpointServer(app, "127.0.0.1", 0, bounds=bounds)
        server.start()
        session = requests.Session()
        started.append((server, session))

        def register(*names):
            result = vmdb.db.recordVMs([vm_record(name) for name in names])
            assert result["OK"], result.get("Message")
            return {name: authority.issue(name, 3600) for name in names}

        def call(method, vm_name, path, token=None, **kwargs):
            headers = kwargs.pop("headers", {})
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            return session.request(method, f"{server.url}/vm/v1/{vm_name}/{path}", headers=headers, timeout=30,
                                   **kwargs)

        return types.SimpleNamespace(
            url=server.url, server=server, app=app, clock=clock, authority=authority, db=vmdb.db,
            register=register, call=call, events=events, limits=limits, session=session,
        )

    try:
        yield make
    finally:
        for server, session in started:
            session.close()
            server.stop()


@pytest.fixture
def endpoint(make_endpoint):
    return make_endpoint()


@pytest.fixture
def make_vm_record():
    """vm_record(name, ce=...) -> the dict VMDB.recordVMs takes."""
    return vm_record


# --- the VMEndpoint agent as DIRAC runs it -------------------------------------------------------
BASE_CFG = """
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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_agent(tmp_path, cfg_text, *options):
    cfg = tmp_path / "agent.cfg"
    cfg.write_text(cfg_text)
    env = dict(os.environ, DIRAC_ROOT_PATH=str(tmp_path))
    env.pop("DIRACSYSCONFIG", None)
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dirac-agent"), "WorkloadManagement/VMEndpoint", "--cfg", str(cfg),
         "-o", "LogOutputs=stdout", *options],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return proc, tmp_path / "agent.log"


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def endpoint_agent(tmp_path, vmdb_cfg: str, **options):
    """A VMEndpoint agent's set-up: a new token secret file, a free port on 127.0.0.1 and the whole
    CS text (BASE_CFG, the test's VMDB `vmdb_cfg`, the agent without TLS; `options`: more agent
    options, e.g. PollingTime). A namespace: cfg, port, secret (its path), url."""
    from diraccfg import CFG

    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import create_secret_file

    secret = tmp_path / "vm-endpoint.secret"
    create_secret_file(secret)
    port = free_port()
    agent = {"Host": "127.0.0.1", "Port": port, "UseTLS": "no", "TokenSecretFile": secret, **options}
    agent_cfg = (
        "Systems\n{\n  WorkloadManagement\n  {\n    Agents\n    {\n      VMEndpoint\n      {\n"
        + "".join(f"        {name} = {value}\n" for name, value in agent.items())
        + "      }\n    }\n  }\n}\n"
    )
    cfg = CFG().loadFromBuffer(BASE_CFG).mergeWith(CFG().loadFromBuffer(vmdb_cfg))
    cfg = str(cfg.mergeWith(CFG().loadFromBuffer(agent_cfg)))
    return types.SimpleNamespace(cfg=cfg, port=port, secret=secret, url=f"http://127.0.0.1:{port}")


def wait_serving(proc, log: Path, url: str, seconds: float = 90) -> None:
    """Wait until the agent started as `proc` answers its /health; fails at once with its log if it exits."""
    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return requests.get(f"{url}/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, seconds, "the endpoint's /health", log.read_text)


@pytest.fixture
def agent_tools():
    """What the tests running dirac-agent WorkloadManagement/VMEndpoint use: base_cfg, free_port,
    endpoint_agent, start_agent, wait_serving, stop."""
    return types.SimpleNamespace(base_cfg=BASE_CFG, free_port=free_port, endpoint_agent=endpoint_agent,
                                 start_agent=start_agent, wait_serving=wait_serving, stop=stop)
