"""A long-running VMDirector (``dirac-agent``, metrics on) over the World of
tests/integration/test_vmdirector_cycle.py; used by the metrics and fleet page tests."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from test_vmdirector_cycle import CE, INSTALLATION, SITE, VO, World  # noqa: F401

from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference

DIRAC_AGENT = Path(sys.executable).parent / "dirac-agent"


def start_director(world: World, port: int) -> subprocess.Popen:
    """The VMDirector cycling every second with MetricsPort = `port`, logging to director.log."""
    cfg = world.tmp / "agent.cfg"
    text = world.cfg().replace("PollingTime = 60", f"PollingTime = 1\n        MetricsPort = {port}", 1)
    cfg.write_text(text)
    return _agent(world, "WorkloadManagement/VMDirector", cfg, "director.log")


def start_endpoint(world: World, port: int, metrics_port: int, secret: Path) -> subprocess.Popen:
    """The VM endpoint agent (plain HTTP on loopback) with MetricsPort = `metrics_port`, logging
    to endpoint.log; VMDB is the World's."""
    cfg = world.tmp / "endpoint.cfg"
    section = (
        "    Agents\n    {\n      VMEndpoint\n      {\n        PollingTime = 2\n        Host = 127.0.0.1\n"
        f"        Port = {port}\n        UseTLS = no\n        TokenSecretFile = {secret}\n"
        f"        MetricsPort = {metrics_port}\n      }}\n"
    )
    text = world.cfg()
    assert text.count("    Agents\n    {\n") == 1
    cfg.write_text(text.replace("    Agents\n    {\n", section, 1))
    return _agent(world, "WorkloadManagement/VMEndpoint", cfg, "endpoint.log")


def _agent(world: World, agent: str, cfg: Path, log_name: str) -> subprocess.Popen:
    env = dict(os.environ, DIRAC_ROOT_PATH=str(world.root))
    env.pop("DIRACSYSCONFIG", None)
    log = open(world.tmp / log_name, "wb")  # noqa: SIM115 - the process owns it
    return subprocess.Popen(
        [str(DIRAC_AGENT), agent, "--cfg", str(cfg), "-o", "LogOutputs=stdout"],
        cwd=world.root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def failed_create(world: World, kind: str, reason: str = "quota exceeded: instances") -> str:
    """A VM record as the CE writes it when the cloud refused the create."""
    name = make_vm_name()
    record = {
        "vm_name": name,
        "vm_id": "",
        "ce": CE,
        "site": SITE,
        "vo": VO,
        "profile": "",
        "pilot_reference": pilot_reference(CE, name),
        "stamp": "ab" * 16,
        "flavor": "m1.small",
        "cores": 1,
        "ram_mb": 2048,
        "created": dt.datetime.now(dt.UTC),
    }
    assert world.vmdb.db.recordVMs([record])["OK"]
    assert world.vmdb.db.markVMsDeleted({name: {"reason": reason, "failure_kind": kind}})["OK"]
    return name


@pytest.fixture
def world(local_cloud, mariadb, vmdb, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    client_module._db = None  # VMStateClient keeps one VMDB per process; each test has its own
    w = World(local_cloud, mariadb, vmdb, tmp_path)
    yield w
    w.close()
    client_module._db = None
