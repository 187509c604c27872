"""The VMManager DIPS service on the loopback DIRAC server, reached by VMStateClient.

Real parts: ``dirac-service WorkloadManagement/VMManager`` (DIPS, TLS with the loopback CA),
VMDB on the server's MariaDB, DIRAC's authorization from the handler's code defaults (no
Authorization section in the CS),
VMStateClient in service mode in separate processes: one with the host certificate
(TrustedHost, Operator), one with the user's proxy (no Operator: refused).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from waiting import wait_until

from dev.loopback.server import REPO_ROOT
from dev.mariadb import free_port

pytestmark = pytest.mark.slow

CALLS = r"""
import datetime as dt, json, sys
from DIRAC.Core.Base.Script import Script
Script.parseCommandLine(ignoreErrors=True)
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

client = VMStateClient(mode="service")
out = {"direct": client.direct}
t0 = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.timezone.utc)
if sys.argv[1] == "write":
    name = "jdirac-" + "ab" * 16
    rec = {"vm_name": name, "vm_id": "uuid-1", "ce": "svc.ce", "site": "CLOUD.Svc.uk", "vo": "vo",
           "cores": 2, "ram_mb": 4096, "created": t0, "pilot_reference": "cloud://svc.ce/" + name}
    out["record"] = client.recordVMs([rec])
    out["states"] = client.setVMStates({name: "ACTIVE"}, when=t0 + dt.timedelta(minutes=1))
    out["log"] = client.storeLog(name, "console", b"\xff\x00binary log")
    out["backoff"] = client.setBackoff("svc.ce", "", t0, "fizzle")["OK"]
out["vms"] = client.getVMs(ce="svc.ce")
out["logs"] = client.getLogs("jdirac-" + "ab" * 16)
def enc(v):
    if isinstance(v, dt.datetime):
        return {"dt": v.isoformat()}
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    raise TypeError(type(v))
print("RESULT " + json.dumps(out, default=enc))
"""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def vmmanager(dirac_server):
    port = free_port()
    url = f"dips://localhost:{port}/WorkloadManagement/VMManager"
    dirac_server.add_cs(
        "Systems\n{\n  WorkloadManagement\n  {\n    Services\n    {\n      VMManager\n      {\n"
        f"        Port = {port}\n        Protocol = dips\n      }}\n    }}\n"
        f"    URLs\n    {{\n      VMManager = {url}\n    }}\n  }}\n}}\n"
    )
    dirac_server.start_component("VMManager", ["dirac-service", "WorkloadManagement/VMManager"])
    log = dirac_server.roots.logs / "VMManager.log"
    wait_until(lambda: _listening(port), 90, "VMManager listening", lambda: log.read_text()[-3000:])
    return port


def call(env, mode):
    res = subprocess.run([sys.executable, "-c", CALLS, mode], env=env, capture_output=True, text=True,
                         timeout=120, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_host_writes_and_reads_through_the_service(dirac_server, vmmanager):
    out = call(dirac_server.server_env(), "write")
    assert out["direct"] is False
    for key in ("record", "states", "log"):
        assert out[key]["OK"], out[key]
    assert out["backoff"] is True
    (vm,) = out["vms"]["Value"]
    assert vm["vm_name"] == "jdirac-" + "ab" * 16 and vm["cores"] == 2
    assert vm["created"] == {"dt": "2026-11-29T08:00:00+00:00"}  # aware UTC after DIPS
    assert vm["started"] == {"dt": "2026-11-29T08:01:00+00:00"}
    assert out["logs"]["Value"] == {"console": {"bytes": b"\xff\x00binary log".hex()}}
    rows = dirac_server.mariadb.execute("SELECT VMName FROM VMs WHERE CE = %s", database="VMDB", params=("svc.ce",))
    assert rows == [("jdirac-" + "ab" * 16,)]


def test_user_without_operator_property_is_refused(dirac_server, vmmanager):
    out = call(dirac_server.client_env(), "read")
    assert out["vms"]["OK"] is False
    assert "Unauthorized query" in out["vms"]["Message"]
    assert out["logs"]["OK"] is False and "Unauthorized query" in out["logs"]["Message"]
