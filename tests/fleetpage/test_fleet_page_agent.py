"""``dirac-agent WorkloadManagement/FleetPage`` serves the page from the CS: certificate and CA
from DIRAC's options, users from the Registry, VMs from VMDB; a malformed option stops it with
the option's name."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

from promkit import free_port
from tlshelper import client_context

from dev.loopback.certs import USER_DN, make_credentials

DIRAC_AGENT = Path(sys.executable).parent / "dirac-agent"


def agent_cfg(mariadb, dbname, creds, port, plots=""):
    return f"""
DIRAC
{{
  Security
  {{
    UseServerCertificate = yes
    CertFile = {creds.host_cert}
    KeyFile = {creds.host_key}
  }}
}}
Registry
{{
  Users
  {{
    opsuser
    {{
      DN = {USER_DN}
    }}
  }}
  Groups
  {{
    dirac_admin
    {{
      Users = opsuser
      Properties = Operator
    }}
  }}
}}
Systems
{{
  Databases
  {{
    User = {mariadb.user}
    Password = {mariadb.password}
    Host = {mariadb.host}
    Port = {mariadb.port}
  }}
  WorkloadManagement
  {{
    Databases
    {{
      VMDB
      {{
        DBName = {dbname}
      }}
    }}
    Agents
    {{
      FleetPage
      {{
        PollingTime = 5
        Host = 127.0.0.1
        Port = {port}
        Plots = {plots}
      }}
    }}
  }}
}}
"""


def start(tmp_path, cfg_text, creds):
    cfg = tmp_path / "fleet.cfg"
    cfg.write_text(cfg_text)
    env = dict(os.environ, DIRAC_ROOT_PATH=str(tmp_path), X509_CERT_DIR=str(creds.cert_dir))
    env.pop("DIRACSYSCONFIG", None)
    return subprocess.Popen(
        [str(DIRAC_AGENT), "WorkloadManagement/FleetPage", "--cfg", str(cfg), "-o", "LogOutputs=stdout"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def get(port, context, path="/"):
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_the_agent_serves_operators_from_the_cs(mariadb, vmdb, tmp_path):
    creds = make_credentials(tmp_path / "grid-security", tmp_path / "user")
    now = dt.datetime.now(dt.UTC)
    record = {
        "vm_name": "jdirac-" + "c" * 32,
        "vm_id": "id-1",
        "ce": "ce.agent.test",
        "site": "CLOUD.Agent.test",
        "vo": "vo",
        "profile": "",
        "pilot_reference": "cloud://ce.agent.test/jdirac-" + "c" * 32,
        "stamp": "cd" * 16,
        "flavor": "m1.small",
        "cores": 1,
        "ram_mb": 2048,
        "created": now,
    }
    assert vmdb.db.recordVMs([record])["OK"]
    assert vmdb.db.setVMStates({record["vm_name"]: {"state": "ACTIVE", "started": now}})["OK"]
    port = free_port()
    agent = start(tmp_path, agent_cfg(mariadb, vmdb.dbname, creds, port), creds)
    operator = client_context(str(creds.ca_cert), str(creds.user_cert), str(creds.user_key))
    try:
        deadline, answer = time.monotonic() + 120, None
        while answer is None and time.monotonic() < deadline and agent.poll() is None:
            try:
                answer = get(port, operator)
            except OSError:
                time.sleep(0.25)  # polling until the agent listens; the deadline decides
        assert answer is not None, agent.stdout.read() if agent.poll() is not None else "no answer"
        status, body = answer
        assert status == 200
        assert 'data-site="CLOUD.Agent.test"' in body
        assert '<td class="n" data-state="ACTIVE">1</td>' in body
        status, body = get(port, operator, f"/vm/{record['vm_name']}")
        assert status == 200 and record["pilot_reference"] in body
        try:
            status = get(port, client_context(str(creds.ca_cert)))[0]
        except OSError:
            status = None  # refused by TLS: no client certificate
        assert status is None
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        agent.stdout.close()


def test_a_malformed_plot_option_stops_the_agent_naming_it(mariadb, vmdb, tmp_path):
    creds = make_credentials(tmp_path / "grid-security", tmp_path / "user")
    agent = start(
        tmp_path,
        agent_cfg(mariadb, vmdb.dbname, creds, free_port(), plots="VirtualMachine/NormCPUUsed"),
        creds,
    )
    out, _ = agent.communicate(timeout=120)
    assert "option Plots: 'VirtualMachine/NormCPUUsed' is not Type/Report/Grouping/Weeks" in out, out
    assert mariadb.password not in out
