"""A hostile LocalCloud VM tries each way out of its sandbox; every one must fail.

Real parts: LocalCloud booting VMs over real HTTP (openstacksdk), bubblewrap, the private
MariaDB of the session. The VM's user data is the attacker; the host is checked from outside.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import uuid
from pathlib import Path

import pytest
from JenniferLocalCloud import LocalCloud
from JenniferLocalCloud.boot.limits import VMLimits
from waiting import wait_until

BOOT = [{"boot": True}]


def _create(conn, user_data: str, name: str = "hostile"):
    image = conn.image.find_image("EL9-x86_64")
    return conn.compute.create_server(name=name, image_id=image.id, flavor_id="2", networks="auto",
                                      user_data=base64.b64encode(user_data.encode()).decode())


def _wait(predicate, seconds: float, what: str):
    return wait_until(predicate, seconds, what, interval=0.1)


def _shutoff(conn, server, seconds: float = 120) -> str:
    _wait(lambda: conn.compute.get_server(server.id).status == "SHUTOFF", seconds, f"{server.id} SHUTOFF")
    return conn.compute.get_server_console_output(server.id)["output"]


def _python_script(path: str, source: str) -> str:
    """A cloud-config that writes a Python script and runs it as the VM's root."""
    return "#cloud-config\n" + json.dumps({
        "write_files": [{"path": path, "content": source}],
        "runcmd": [["python3", path]],
    })


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _connects(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_links_planted_by_a_vm_are_not_followed_when_its_id_comes_back(tmp_path):
    """Two clouds with the same id seed and sandbox root: the second one's VM gets the id of
    the first one's, whose VM planted links to host files at every path the host writes."""
    target = tmp_path / "host-file"
    target.write_text("untouched\n")
    victim = tmp_path / "host-dir"
    victim.mkdir()
    root = tmp_path / "vms"
    plant = "\n".join([
        "#!/bin/sh",
        f"ln -sfn {target} /etc/hostname",
        f"ln -sfn {target} /var/lib/cloud/data/instance-id",
        "iid=$(basename $(readlink /var/lib/cloud/instance))",
        f"rm -rf /var/lib/cloud/instances/$iid && ln -s {victim} /var/lib/cloud/instances/$iid",
        f"rm -rf /run/cloud-init && ln -s {victim} /run/cloud-init",
        f"rm -rf /var/lib/cloud/localcloud && ln -s {victim} /var/lib/cloud/localcloud",
        f"rm -rf /tmp && ln -s {victim} /tmp 2>/dev/null; echo planted $iid",
        "",
    ])
    with LocalCloud(boot=True, sandbox_root=root, seed=7) as first:
        conn = first.connect()
        server = _create(conn, plant)
        assert "planted " + server.id in _shutoff(conn, server)
        first_id, first_dir = server.id, first.booter.sandbox(server.id).directory
        assert (first_dir / "fs/etc/hostname").is_symlink()

    with LocalCloud(boot=True, sandbox_root=root, seed=7) as second:
        conn = second.connect()
        server = _create(conn, "#!/bin/sh\necho second boot as $(hostname)\n")
        assert server.id == first_id  # the fixed seed gives the same id again
        console = _shutoff(conn, server)
        second_dir = second.booter.sandbox(server.id).directory
    assert "second boot as hostile" in console
    assert second_dir != first_dir and not second_dir.is_relative_to(first_dir.parent)
    assert target.read_text() == "untouched\n"
    assert list(victim.iterdir()) == []


def test_an_existing_vm_directory_is_refused_and_left_alone(tmp_path):
    from JenniferLocalCloud.boot.sandbox import Sandbox, SandboxExists

    target = tmp_path / "host-dir"
    target.mkdir()
    planted = tmp_path / "vm-link"
    planted.symlink_to(target)
    leftover = tmp_path / "vm-dir"
    leftover.mkdir()
    for directory in (planted, leftover):
        with pytest.raises(SandboxExists, match="refusing to reuse it"):
            Sandbox(directory).create()
    assert list(target.iterdir()) == [] and list(leftover.iterdir()) == []


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_reads_of_host_secrets_fail(local_cloud, mariadb, tmp_path):
    pilot_files = tmp_path / "pilotfiles"
    pilot_files.mkdir()
    (pilot_files / "pilot.json").write_text('{"pilot": "readable"}\n')
    leaked_auth = pilot_files / "cloud.auth"  # a secret left beside the pilot files, mode 0600
    leaked_auth.write_text("[DEFAULT]\nsecret = auth-secret-" + uuid.uuid4().hex + "\n")
    leaked_auth.chmod(0o600)
    endpoint_secret = pilot_files / "vm-endpoint.secret"  # world-readable by mistake: hidden
    endpoint_secret.write_text("endpoint-secret-" + uuid.uuid4().hex + "\n")
    endpoint_secret.chmod(0o644)
    server_etc = tmp_path / "server" / "etc"  # not exposed at all
    server_etc.mkdir(parents=True)
    host_key = server_etc / "hostkey.pem"
    host_key.write_text("host-key-" + uuid.uuid4().hex + "\n")
    host_key.chmod(0o644)
    datadir = Path(mariadb.datadir)
    local_cloud.booter.readable = (str(pilot_files),)
    local_cloud.booter.hidden = (str(endpoint_secret),)
    local_cloud.booter.reachable = ()

    paths = [str(pilot_files / "pilot.json"), str(leaked_auth), str(endpoint_secret), str(host_key),
             "/etc/ssh/ssh_host_ed25519_key",
             str(datadir / "mysql" / "user.MAI"), str(datadir / "mysql" / "global_priv.MAD")]
    source = f"""
import hashlib, os, socket
for path in {paths!r}:
    try:
        data = open(path, 'rb').read()
    except OSError as exc:
        print('refused', path, type(exc).__name__)
    else:
        print('read', path, len(data), hashlib.sha256(data).hexdigest())
try:
    print('listed-datadir', os.listdir({str(datadir)!r}))
except OSError as exc:
    print('refused-datadir', type(exc).__name__)
for path in ('/etc/shadow', '/etc/gshadow'):  # the VM's own, never the host's
    print('own', path, hashlib.sha256(open(path, 'rb').read()).hexdigest())
for kind, address in (('tcp', ('127.0.0.1', {mariadb.port})), ('unix', {str(mariadb.socket)!r})):
    family = socket.AF_INET if kind == 'tcp' else socket.AF_UNIX
    with socket.socket(family) as sock:
        sock.settimeout(3)
        try:
            sock.connect(address)
            print('connected-mariadb', kind, sock.recv(64))
        except OSError as exc:
            print('refused-mariadb', kind, type(exc).__name__)
print('shadow-begin')
print(open('/etc/shadow').read(), end='')
print('shadow-end')
"""
    conn = local_cloud.connect()
    server = _create(conn, _python_script("/root/steal.py", source))
    console = _shutoff(conn, server)

    digest = hashlib.sha256((pilot_files / "pilot.json").read_bytes()).hexdigest()
    assert f"read {pilot_files / 'pilot.json'} " in console and digest in console  # the probe works
    for path in paths[1:]:
        assert f"refused {path} " in console or f"read {path} 0 " in console, console[-4000:]
    for secret in (leaked_auth, endpoint_secret, host_key, Path("/etc/shadow"), Path("/etc/gshadow")):
        assert hashlib.sha256(secret.read_bytes()).hexdigest() not in console
    assert "refused-datadir" in console and "listed-datadir" not in console
    assert "refused-mariadb tcp" in console and "refused-mariadb unix" in console
    assert "connected-mariadb" not in console
    vm_shadow = console.split("shadow-begin\n", 1)[1].split("shadow-end", 1)[0].splitlines()
    assert vm_shadow and all(line.split(":")[1] in ("*", "!") for line in vm_shadow), vm_shadow


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_vm_root_is_not_host_root_and_opens_no_host_port(local_cloud):
    high_port = _free_port()
    marker = f"listener-{uuid.uuid4().hex[:12]}"
    source = f"""
import socket, sys, time
print('uid_map', open('/proc/self/uid_map').read().split())
sockets = []
for port in (81, {high_port}):
    sock = socket.socket()
    try:
        sock.bind(('0.0.0.0', port))
        sock.listen()
        sockets.append(sock)
        print('listening', port)
    except OSError as exc:
        print('bind-refused', port, type(exc).__name__)
print('ready', flush=True)
time.sleep(600)
"""
    conn = local_cloud.connect()
    user_data = "#cloud-config\n" + json.dumps({
        "write_files": [{"path": "/root/listen.py", "content": source}],
        "runcmd": [["bash", "-c", f"exec -a {marker} python3 /root/listen.py"]],
    })
    server = _create(conn, user_data)

    def console():
        return conn.compute.get_server_console_output(server.id)["output"]

    _wait(lambda: "ready" in console(), 60, "the VM's listeners: " + console()[-2000:])
    text = console()
    uid_map = text.split("uid_map ", 1)[1].splitlines()[0]
    assert not uid_map.startswith("['0', '0'"), uid_map  # VM root is not mapped to host root
    assert f"listening {high_port}" in text  # inside its own namespace it may listen...
    assert not _connects(high_port)  # ...where the host cannot see it
    assert "listening 81" not in text or not _connects(81)
    # Seen from the host, the VM's processes run as an unprivileged uid.
    host_uids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                status = Path(f"/proc/{pid}/status").read_text()
                host_uids.add(int(status.split("Uid:")[1].split()[0]))
        except OSError:
            pass
    assert host_uids and 0 not in host_uids and min(host_uids) >= 65536, host_uids
    conn.compute.delete_server(server)


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_writes_outside_the_vm_tree_fail(local_cloud, tmp_path):
    exposed = tmp_path / "exposed"
    exposed.mkdir()
    local_cloud.booter.readable = (str(exposed),)
    marker = f"escape-{uuid.uuid4().hex}"
    targets = [f"{exposed}/{marker}", f"/usr/{marker}", f"{Path.cwd()}/{marker}",
               f"/proc/1/root/{marker}", "/proc/sys/kernel/hostname", "/proc/sysrq-trigger"]
    script = "#!/bin/sh\n" + "".join(
        f"(echo x > {t}) 2>/dev/null && echo wrote {t} || echo refused {t}\n" for t in targets)
    script += "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo mount-refused\n"
    script += "nsenter -t 1 -m true 2>/dev/null && echo nsenter || echo nsenter-refused\n"
    conn = local_cloud.connect()
    server = _create(conn, script)
    console = _shutoff(conn, server)
    for target in targets:
        assert f"refused {target}" in console, console[-3000:]
    assert "mount-refused" in console and "nsenter-refused" in console
    assert not (exposed / marker).exists() and not Path(f"/usr/{marker}").exists()


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_rlimits_contain_fork_bombs_memory_hogs_and_runaway_files(local_cloud):
    local_cloud.booter.limits = VMLimits(cpu_seconds=2, address_space_bytes=1 << 30, processes=64,
                                         file_size_bytes=1 << 20, open_files=64)
    source = """
import os, signal, subprocess, sys, time
children = []
for i in range(1000):
    try:
        pid = os.fork()
    except OSError as exc:
        print('fork-refused-after', i, type(exc).__name__, flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children.append(pid)
else:
    print('fork-bomb-unbounded', flush=True)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
try:
    hog = bytearray(2 << 30)
    print('memory-granted', len(hog), flush=True)
except MemoryError:
    print('memory-refused', flush=True)
handles = []
try:
    for i in range(1000):
        handles.append(open('/dev/null'))
    print('files-unbounded', flush=True)
except OSError as exc:
    print('files-refused-after', len(handles), flush=True)
for handle in handles:
    handle.close()
code = subprocess.call(['sh', '-c', 'head -c 4194304 /dev/zero > /tmp/big'])
print('big-file', os.path.getsize('/tmp/big'), 'exit', code, flush=True)
code = subprocess.call([sys.executable, '-c', 'while True: pass'])
print('busy-loop-exit', code, flush=True)
"""
    conn = local_cloud.connect()
    server = _create(conn, _python_script("/root/hog.py", source))
    console = _shutoff(conn, server, seconds=180)
    refused = [line for line in console.splitlines() if line.startswith("fork-refused-after")]
    assert refused and int(refused[0].split()[1]) < 64, console[-3000:]
    assert "memory-refused" in console
    files = [line for line in console.splitlines() if line.startswith("files-refused-after")]
    assert files and int(files[0].split()[1]) < 64
    big = [line.split() for line in console.splitlines() if line.startswith("big-file")]
    assert big and int(big[0][1]) == 1 << 20 and big[0][3] in ("153", "-25"), big  # SIGXFSZ
    assert "busy-loop-exit -24" in console or "busy-loop-exit -9" in console  # SIGXCPU / SIGKILL
