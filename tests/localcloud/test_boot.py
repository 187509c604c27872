"""Booting VMs: user data runs in a bubblewrap sandbox, its output is the console, it ends SHUTOFF."""

import base64
import gzip
import json
import os
import sys
import uuid
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from waiting import wait_until

BOOT = [{"boot": True}]


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _create(conn, user_data, name="vm", metadata=None):
    image = conn.image.find_image("EL9-x86_64")
    return conn.compute.create_server(name=name, image_id=image.id, flavor_id="2", networks="auto",
                                      user_data=_b64(user_data), metadata=metadata or {})


def _wait_status(conn, server_id, status, deadline_seconds=60):
    def status_now():
        return conn.compute.get_server(server_id).status

    return wait_until(lambda: status_now() == status and status, deadline_seconds,
                      f"server {server_id} {status}", lambda: f"still {status_now()}", interval=0.1)


def _console(conn, server_id):
    return conn.compute.get_server_console_output(server_id)["output"]


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_cloud_config_writes_runs_and_powers_off_inside_sandbox(local_cloud):
    conn = local_cloud.connect()
    marker = f"jdirac-{uuid.uuid4().hex}"
    escapes = [f"/tmp/{marker}", f"/etc/{marker}", f"/root/{marker}", f"/var/tmp/{marker}",
               f"/home/{marker}", f"/opt/{marker}", f"{Path.cwd()}/{marker}", f"/usr/local/{marker}"]
    user_data = "#cloud-config\n" + json.dumps({
        "users": [{"name": "pilot", "shell": "/bin/bash"}],
        "write_files": [
            {"path": "/etc/jdirac/pilot.cfg", "content": _b64("stamp=42\n"), "encoding": "b64",
             "permissions": "0640"},
            {"path": "/opt/pilot/hello.sh", "permissions": "0755", "owner": "pilot:pilot", "defer": True,
             "content": _b64(gzip.compress(b"#!/bin/sh\necho \"hello from $(id -un)\"\n")),
             "encoding": "gz+b64"},
        ],
        "runcmd": [
            "cat /etc/jdirac/pilot.cfg",
            "runuser -u pilot -- /opt/pilot/hello.sh",
            ["sh", "-c", "echo instance $(cat /var/lib/cloud/data/instance-id)"],
            *[f"touch {path} 2>/dev/null && echo wrote {path} || echo refused {path}" for path in escapes],
            "echo to-stderr >&2",
            # rewrite a host sysctl with its own value: harmless even if it were allowed
            "v=$(cat /proc/sys/kernel/core_pattern); echo \"$v\" > /proc/sys/kernel/core_pattern "
            "2>/dev/null && echo sysctl-written || echo sysctl-refused",
            "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo mount-refused",
            f"runuser -u pilot -- {sys.executable} -c \"import yaml; print('venv-python-ok')\"",
        ],
        "packages": ["htop"],
        "power_state": {"mode": "poweroff", "message": "pilot done"},
    })
    server = _create(conn, user_data)
    assert _wait_status(conn, server.id, "SHUTOFF") == "SHUTOFF"

    console = _console(conn, server.id)
    assert "stamp=42" in console
    assert "hello from pilot" in console
    assert f"instance {server.id}" in console
    assert "to-stderr" in console
    assert "sysctl-refused" in console and "mount-refused" in console
    assert "venv-python-ok" in console  # the host's virtualenv is readable by declared users
    assert "module for 'packages' not supported in LocalCloud: skipped" in console
    assert "power_state: poweroff" in console
    for path in escapes:
        assert not os.path.exists(path), f"{path} escaped the sandbox"
    fs = local_cloud.booter.sandbox(server.id).fs
    assert (fs / "etc/jdirac/pilot.cfg").read_text() == "stamp=42\n"
    assert oct((fs / "etc/jdirac/pilot.cfg").stat().st_mode & 0o777) == "0o640"
    assert (fs / "tmp" / marker).exists() and (fs / "etc" / marker).exists()
    assert f"refused {Path.cwd()}/{marker}" in console and f"refused /usr/local/{marker}" in console
    assert "hello from pilot" in (fs / "var/log/cloud-init-output.log").read_text()
    assert "pilot:" in (fs / "etc/passwd").read_text()
    assert "pilot:" not in Path("/etc/passwd").read_text()


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_mime_multipart_script_and_instance_data(local_cloud):
    conn = local_cloud.connect()
    message = MIMEMultipart()
    message.attach(MIMEText("#cloud-config\nbootcmd:\n  - echo early-boot\n", "cloud-config"))
    script = "#!/bin/sh\necho script-part\npython3 -c \"import json; d=json.load(open('/run/cloud-init/" \
             "instance-data.json')); print('meta', d['ds']['meta_data']['meta']['owner'], " \
             "d['v1']['instance_id'])\"\n"
    message.attach(MIMEText(script, "x-shellscript"))
    server = _create(conn, message.as_string(), name="multi", metadata={"owner": "ce-7"})
    _wait_status(conn, server.id, "SHUTOFF")
    console = _console(conn, server.id)
    assert console.index("early-boot") < console.index("script-part")
    assert f"meta ce-7 {server.id}" in console
    assert "no power_state: the VM halts" in console
    assert _console(conn, server.id).count("\n") > conn.compute.get_server_console_output(
        server.id, length=2)["output"].count("\n")


def _processes_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_delete_kills_the_vm_processes(local_cloud):
    conn = local_cloud.connect()
    marker = f"sleeper-{uuid.uuid4().hex[:12]}"
    server = _create(conn, f"#!/bin/bash\necho started\nexec -a {marker} sleep 600\n")
    wait_until(lambda: _processes_with(marker), 30, "the VM process to start", interval=0.1)
    assert conn.compute.get_server(server.id).status == "ACTIVE"
    conn.compute.delete_server(server)
    wait_until(lambda: not _processes_with(marker), 30, "the VM processes to be killed",
               lambda: f"left: {_processes_with(marker)}", interval=0.1)


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_vm_without_user_data_stays_up(local_cloud):
    conn = local_cloud.connect()
    image = conn.image.find_image("EL9-x86_64")
    server = conn.compute.create_server(name="idle", image_id=image.id, flavor_id="1", networks="auto")
    local_cloud.compute.tick()
    assert conn.compute.get_server(server.id).status == "ACTIVE"
    assert "idle login:" in _console(conn, server.id)
    assert local_cloud.booter.processes == {}
    conn.compute.update_server(server, name="renamed")
    assert conn.compute.get_server(server.id).name == "renamed"


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_vm_reaches_only_the_forwarded_host_addresses(local_cloud):
    conn = local_cloud.connect()
    allowed_port = local_cloud.base_url.rsplit(":", 1)[1]
    local_cloud.booter.reachable = (f"localhost:{allowed_port}",)
    probe = ("import sys, urllib.request\n"
             "for url in sys.argv[1:]:\n"
             "    try:\n"
             "        print('reached', url, urllib.request.urlopen(url, timeout=5).status)\n"
             "    except OSError as exc:\n"
             "        print('unreachable', url, type(exc).__name__)\n")
    allowed = f"{local_cloud.base_url}/compute/v2.1"
    other = local_cloud.base_url.replace(allowed_port, str(int(allowed_port) ^ 1))
    server = _create(conn, "#cloud-config\n" + json.dumps({
        "write_files": [{"path": "/root/probe.py", "content": probe}],
        "runcmd": [["python3", "/root/probe.py", allowed, other]],
    }))
    _wait_status(conn, server.id, "SHUTOFF")
    console = _console(conn, server.id)
    assert f"network: reachable 127.0.0.1:{allowed_port}" in console
    assert f"reached {allowed} 200" in console
    assert f"unreachable {other}" in console


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_readable_host_paths_under_hidden_directories(local_cloud, tmp_path):
    shared = tmp_path / "pilot-files"
    shared.mkdir()
    (shared / "wrapper.sh").write_text("echo wrapper-from-host\n")
    local_cloud.booter.readable = (str(shared),)
    conn = local_cloud.connect()
    server = _create(conn, "#cloud-config\n" + json.dumps({
        "users": [{"name": "pilot"}],
        "runcmd": [f"runuser -u pilot -- sh {shared}/wrapper.sh",
                   f"touch {shared}/written 2>/dev/null && echo wrote || echo read-only"],
    }))
    _wait_status(conn, server.id, "SHUTOFF")
    console = _console(conn, server.id)
    assert "wrapper-from-host" in console and "read-only" in console
    assert not (shared / "written").exists()
