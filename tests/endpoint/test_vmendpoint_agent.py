"""dirac-agent WorkloadManagement/VMEndpoint: started by DIRAC's runner, serves VMs into VMDB."""

import os

import requests
from waiting import wait_until

from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority, create_secret_file


def test_agent_serves_vms_into_vmdb(tmp_path, vmdb, make_vm_record, agent_tools):
    agent = agent_tools.endpoint_agent(tmp_path, vmdb.cfg, PollingTime=2)
    secret = agent.secret
    assert vmdb.db.recordVMs([make_vm_record("jdirac-agentvm")])["OK"]
    token = TokenAuthority.from_secret_file(secret).issue("jdirac-agentvm", 600)
    proc, log = agent_tools.start_agent(tmp_path, agent.cfg, "-o", "MaxCycles=0")
    try:
        agent_tools.wait_serving(proc, log, agent.url)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"{agent.url}/vm/v1/jdirac-agentvm"
        assert requests.post(base + "/heartbeat", data=b"0.1 0.1 0.1 1/1 1", headers=headers, timeout=10).status_code == 204
        assert requests.put(base + "/logs/boot", data=b"booted", headers=headers, timeout=10).status_code == 204
        assert requests.put(base + "/shutdown_message", data=b"200 Intended work completed ok", headers=headers,
                            timeout=10).status_code == 204
        assert requests.put(base + "/logs/boot", data=b"x", timeout=10).status_code == 401
        assert vmdb.db.getLogs("jdirac-agentvm")["Value"] == {"boot": b"booted"}
        # Heartbeats are written in batches (HeartbeatFlushMilliseconds after they arrive).
        wait_until(lambda: vmdb.db.getVMs(names=["jdirac-agentvm"])["Value"][0]["last_heartbeat"] is not None,
                   30, "the heartbeat's batch", log.read_text)
        record = vmdb.db.getVMs(names=["jdirac-agentvm"])["Value"][0]
        assert record["shutdown_code"] == 200 and record["last_heartbeat"] is not None
        # Housekeeping cycles run alongside the server.
        wait_until(lambda: "VMEndpoint cycle done" in log.read_text(), 60, "a housekeeping cycle",
                   log.read_text)
        assert token not in log.read_text()

        # Secret rotation without a restart: a new first secret signs, the old one still verifies.
        new_secret = tmp_path / "new.secret"
        create_secret_file(new_secret)
        secret.write_text(new_secret.read_text() + secret.read_text())
        new_token = TokenAuthority.from_secret_file(new_secret).issue("jdirac-agentvm", 600)
        wait_until(lambda: requests.put(base + "/logs/pilot", data=b"rotated", timeout=10,
                                        headers={"Authorization": f"Bearer {new_token}"}).status_code == 204,
                   60, "the new secret's token to be accepted", log.read_text)
        assert requests.put(base + "/logs/boot", data=b"old token still good", headers=headers,
                            timeout=10).status_code == 204
    finally:
        agent_tools.stop(proc)


def test_agent_refuses_to_start_with_a_readable_secret(tmp_path, agent_tools):
    secret = tmp_path / "open.secret"
    secret.write_text("x" * 40 + "\n")
    os.chmod(secret, 0o644)
    proc, log = agent_tools.start_agent(tmp_path, agent_tools.base_cfg, "-o", "MaxCycles=1",
                                        "-o", f"TokenSecretFile={secret}", "-o", "UseTLS=no",
                                        "-o", f"Port={agent_tools.free_port()}")
    try:
        proc.wait(timeout=120)
    finally:
        agent_tools.stop(proc)
    out = log.read_text()
    assert "chmod 600" in out, out
    assert "x" * 40 not in out


def test_agent_refuses_a_bad_bound_naming_the_option(tmp_path, agent_tools):
    secret = tmp_path / "vm-endpoint.secret"
    create_secret_file(secret)
    proc, log = agent_tools.start_agent(tmp_path, agent_tools.base_cfg, "-o", "MaxCycles=1",
                                        "-o", f"TokenSecretFile={secret}", "-o", "UseTLS=no",
                                        "-o", f"Port={agent_tools.free_port()}", "-o", "BodyTimeout=soon")
    try:
        proc.wait(timeout=120)
    finally:
        agent_tools.stop(proc)
    out = log.read_text()
    assert "option BodyTimeout: 'soon' is not a number" in out, out[-3000:]
