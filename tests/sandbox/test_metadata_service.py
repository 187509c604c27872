"""LocalCloud's metadata service on the VM's side of its sandbox, and the boot script's block of it.

Real parts: LocalCloud booting VMs over real HTTP (openstacksdk), bubblewrap, curl inside the
VM against 169.254.169.254, and the boot script's own ``block_metadata`` (taken from the
template) applying nftables, or iptables' owner match, inside the VM's network namespace.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid

import pytest
from JenniferLocalCloud.boot import metadata
from waiting import wait_until

from JenniferDIRAC.Resources.Cloud.UserData.render import BOOT_SCRIPT

BOOT = [{"boot": True}]


def block_metadata_function() -> str:
    text = BOOT_SCRIPT.read_text()
    match = re.search(r"^block_metadata\(\) \{\n.*?^\}\n\n", text, re.M | re.S)
    assert match, f"block_metadata not in {BOOT_SCRIPT}"
    return match.group(0)


def probe_script(marker: str, without_nft: bool) -> str:
    """As the VM's root: read the service, create a user, check it reads it too, block, check again."""
    return "\n".join([
        "#!/bin/bash",
        f"# {marker}",
        "md=http://169.254.169.254",
        "get() { curl -s -m 5 -o /tmp/got -w '%{http_code}' \"$md$1\"; echo \" exit=$?\"; }",
        "as_probe() { runuser -u probe -- curl -s -m 5 -o /dev/null -w '%{http_code}' \"$md$1\";"
        " echo \" exit=$?\"; }",
        "log() { echo \"LOG $*\"; }",
        "nft() { return 1; }" if without_nft else "",
        block_metadata_function(),
        "digest() { sha256sum < /tmp/got | cut -c1-64; }",
        'echo "root user_data $(get /openstack/latest/user_data) sha256=$(digest)"',
        'echo "root meta_data.json $(get /openstack/latest/meta_data.json) $(cat /tmp/got)"',
        'echo "root ec2 user-data $(get /latest/user-data) sha256=$(digest)"',
        'echo "root ec2 instance-id $(get /latest/meta-data/instance-id) $(cat /tmp/got)"',
        'echo "root ec2 listing $(get /latest/meta-data/) $(tr "\\n" , < /tmp/got)"',
        'echo "root other path $(get /openstack/latest/vendor_data2.json)"',
        "code() { curl -s -m 5 -o /dev/null -w '%{http_code}' \"$@\"; }",
        'echo "root post $(code -X POST -d x $md/openstack/latest/user_data)"',
        'echo "root big head $(code -H "X-Big: $(head -c 9000 /dev/zero | tr "\\0" a)" $md/latest/user-data)"',
        "useradd --create-home probe",
        'echo "probe before the block $(as_probe /openstack/latest/meta_data.json)"',
        "block_metadata",
        'echo "probe after the block $(as_probe /openstack/latest/meta_data.json)"',
        'echo "root after the block $(get /openstack/latest/meta_data.json)"',
        "",
    ])


def _create(conn, name: str, user_data: str, meta: dict[str, str]):
    image = conn.image.find_image("EL9-x86_64")
    return conn.compute.create_server(name=name, image_id=image.id, flavor_id="2", networks="auto",
                                      user_data=base64.b64encode(user_data.encode()).decode(),
                                      metadata=meta)


def _line(console: str, prefix: str) -> str:
    found = [line[len(prefix):].strip() for line in console.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, (prefix, console[-4000:])
    return found[0]


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_each_vm_reads_its_own_metadata_as_root_and_the_block_refuses_other_uids(local_cloud):
    conn = local_cloud.connect()
    vms = {}
    for name, without_nft in (("md-nft", False), ("md-iptables", True)):
        marker = f"{name}-{uuid.uuid4().hex}"
        user_data = probe_script(marker, without_nft)
        server = _create(conn, name, user_data, {"marker": marker})
        vms[name] = (server, user_data, marker)
    consoles = {}
    for name, (server, _, _) in vms.items():
        wait_until(lambda: conn.compute.get_server(server.id).status == "SHUTOFF", 120,
                   f"{name} SHUTOFF", interval=0.1)
        consoles[name] = conn.compute.get_server_console_output(server.id)["output"]

    for name, (server, user_data, marker) in vms.items():
        console = consoles[name]
        digest = hashlib.sha256(user_data.encode()).hexdigest()
        # The runner (cloud-init's datasource) read it as root before the user data ran.
        assert f"datasource: OpenStack metadata service at 169.254.169.254, instance {server.id}" in console
        assert _line(console, "root user_data ") == f"200 exit=0 sha256={digest}"
        assert _line(console, "root ec2 user-data ") == f"200 exit=0 sha256={digest}"
        status, meta_json = _line(console, "root meta_data.json ").split(" exit=0 ", 1)
        meta = json.loads(meta_json)
        assert status == "200" and meta["uuid"] == server.id and meta["name"] == name
        assert meta["meta"] == {"marker": marker}
        assert _line(console, "root ec2 instance-id ") == f"200 exit=0 {server.id}"
        assert _line(console, "root ec2 listing ") == \
            "200 exit=0 hostname,instance-id,local-hostname,placement/"
        assert _line(console, "root other path ") == "404 exit=0"
        assert _line(console, "root post ") == "405"
        assert _line(console, "root big head ") == "431"
        # Another uid reads it until the boot script's block runs, and not after; root still does.
        assert _line(console, "probe before the block ") == "200 exit=0"
        tool = "iptables" if name == "md-iptables" else "nftables"
        assert f"LOG metadata service 169.254.169.254 blocked for every uid but root ({tool})" in console
        assert _line(console, "probe after the block ") == "000 exit=7", (name, console[-3000:])  # refused
        assert _line(console, "root after the block ") == "200 exit=0"
        # Never another VM's data.
        for other, (other_server, other_user_data, other_marker) in vms.items():
            if other != name:
                assert other_server.id not in console and other_marker not in console
                assert hashlib.sha256(other_user_data.encode()).hexdigest() not in console


def test_the_service_answers_only_its_vms_documents():
    """The host side as a pure function: unknown paths (another VM's id among them) are 404."""
    from JenniferLocalCloud.boot.sandbox import InstanceInfo

    info = InstanceInfo("id-a", "vm-a", "p", "nova", "RegionOne", {"k": "v"}, b"#!/bin/sh\n")
    docs = metadata.documents(info)
    user_data = metadata.respond(docs, b"GET /openstack/latest/user_data HTTP/1.1\r\n\r\n")
    assert user_data[:2] == (200, metadata.Document(b"#!/bin/sh\n", "application/octet-stream"))
    assert metadata.respond(docs, b"GET /latest/meta-data/instance-id?x=1 HTTP/1.0\r\n\r\n")[1].body == b"id-a"
    assert metadata.respond(docs, b"GET /openstack/id-b/meta_data.json HTTP/1.1\r\n\r\n")[0] == 404
    assert metadata.respond(docs, b"GET http://169.254.169.254/ HTTP/1.1\r\n\r\n")[0] == 400
    assert metadata.respond(docs, b"DELETE / HTTP/1.1\r\n\r\n")[0] == 405
    empty = metadata.documents(InstanceInfo("id-c", "vm-c", "p", "nova", "RegionOne", {}, b""))
    assert metadata.respond(empty, b"GET /openstack/latest/user_data HTTP/1.1\r\n\r\n")[0] == 404
    assert metadata.respond(empty, b"GET /openstack/latest HTTP/1.1\r\n\r\n")[1].body == b"meta_data.json"


@pytest.mark.parametrize("local_cloud", BOOT, indirect=True)
def test_a_vm_holding_connections_open_gets_the_bridges_limit_and_the_request_timeout(local_cloud):
    """A hostile VM opens more idle connections than the bridge allows one VM: the host holds at
    most that many, closes each after REQUEST_TIMEOUT without a request, and then serves again."""
    limit = local_cloud.booter.network.max_connections_per_vm = 40  # the VM's rlimits bound its relay threads
    source = f"""
import socket, urllib.request
held = [socket.create_connection(('169.254.169.254', 80), timeout=5) for _ in range({limit + 20})]
print('opened', len(held), flush=True)
for sock in held:
    sock.settimeout(60)
    assert sock.recv(1) == b'', 'an idle connection got an answer'
print('all closed by the host', flush=True)
with urllib.request.urlopen('http://169.254.169.254/latest/meta-data/instance-id', timeout=10) as r:
    print('served again', r.status, r.read().decode(), flush=True)
"""
    conn = local_cloud.connect()
    user_data = "#cloud-config\n" + json.dumps({"write_files": [{"path": "/root/hold.py", "content": source}],
                                                "runcmd": [["python3", "/root/hold.py"]]})
    server = _create(conn, "md-holder", user_data, {})
    network = local_cloud.booter.network
    wait_until(lambda: network.connections(server.id) == limit, 60, f"{limit} connections held",
               lambda: f"{network.connections(server.id)} held; console: "
               + conn.compute.get_server_console_output(server.id)["output"][-3000:], interval=0.05)
    seen = []
    wait_until(lambda: seen.append(network.connections(server.id)) or seen[-1] == 0,
               metadata.REQUEST_TIMEOUT + 30, "the idle connections closed", interval=0.05)
    assert max(seen) <= limit, max(seen)
    wait_until(lambda: conn.compute.get_server(server.id).status == "SHUTOFF", 60, "md-holder SHUTOFF",
               interval=0.1)
    console = conn.compute.get_server_console_output(server.id)["output"]
    assert f"opened {limit + 20}" in console and "all closed by the host" in console, console[-3000:]
    assert f"served again 200 {server.id}" in console, console[-3000:]
