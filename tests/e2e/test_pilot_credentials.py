"""End to end: a job's payload in a VM the cloud CE booted looks for the pilot's credentials
wherever this VM offers user data and finds none that works (issue 21).

Real parts as in test_cloud_pilot.py: the loopback DIRAC server, DIRAC's SiteDirector with the
cloud CE on LocalCloud (VMs in bubblewrap sandboxes), the VM endpoint serving the one-time
bootstrap fetch, the real JobAgent, and LocalCloud's metadata service at 169.254.169.254 on the
VM's side of its sandbox, which the VM's root reads at boot and the boot script then blocks for
every other uid (nftables, in the VM's own network namespace): the payload tries it too.

It also prints the user-data size of the pilot VM beside v0.1.0's, rendered by v0.1.0's own code
(``git archive`` of the v0.1.0 release commit) with the wrapper and the report token this VM
fetched.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from dev.loopback.cloudsite import CE, attach_cloud, configure_cloud_site, start_cloud_agents, stop_cloud_agents
from dev.loopback.config import SITE, VO
from dev.loopback.jobs import job_jdl, wait_for

pytestmark = pytest.mark.slow

#: Where a LocalCloud VM keeps user data and metadata (boot/sandbox.py), and what the boot script
#: leaves on disk.
LOOKED_AT = (
    "/var/lib/cloud/instance/user-data.txt /var/lib/cloud/instance/cloud-config.txt "
    "/var/lib/cloud/instance/meta_data.json /var/lib/cloud/instance/scripts/runcmd "
    "/var/lib/cloud/instances/*/user-data.txt /var/lib/cloud/instances/*/meta_data.json "
    "/run/cloud-init/instance-data.json /run/cloud-init/instance-data-sensitive.json "
    "/etc/jdirac/vm.env /etc/jdirac/pilot.env /etc/jdirac/endpoint.header "
    "/var/lib/jdirac/pilot-wrapper.sh /var/lib/jdirac/bootstrap.out /var/lib/jdirac/jdirac-boot"
)
TOKEN = r"jd[bv]1\.[A-Za-z0-9_-]+\.[0-9]+\.[A-Za-z0-9_-]+"
PAYLOAD = r"""
echo "payload as $(id -un)"
try() {{  # try TOKEN: the bootstrap fetch and a heartbeat with it
    vm=$(echo "$1" | cut -d. -f2)
    b=$(curl -s -o /dev/null -w '%{{http_code}}' -H "Authorization: Bearer $1" "{url}/vm/v1/$vm/bootstrap")
    h=$(curl -s -o /dev/null -w '%{{http_code}}' -X POST -H "Authorization: Bearer $1" "{url}/vm/v1/$vm/heartbeat")
    echo "TRIED $(echo "$1" | cut -c1-4) bootstrap=$b heartbeat=$h"
}}
for f in {looked_at}; do
    if [ ! -e "$f" ]; then echo "ABSENT $f"; continue; fi
    if [ ! -r "$f" ]; then echo "UNREADABLE $f"; continue; fi
    echo "READABLE $f"
    grep -aq -- '-----BEGIN' "$f" && echo "PROXY in $f"
    for t in $(grep -aoE '{token}' "$f"); do try "$t"; done
done
for t in $(env | grep -aoE '{token}'); do echo "TOKEN in the environment"; try "$t"; done
for path in /openstack/latest/user_data /openstack/latest/meta_data.json /latest/user-data; do
    code=$(curl -s -m 5 -o /dev/null -w '%{{http_code}}' "http://169.254.169.254$path")
    echo "METADATA $path http=$code exit=$?"
done
echo "PAYLOAD DONE"
"""


@pytest.fixture(scope="module")
def cloud_site(dirac_server, request):
    from JenniferLocalCloud import LocalCloud

    cloud = LocalCloud(boot=True, sandbox_root=dirac_server.roots.base / "vms-credentials")
    attach_cloud(dirac_server, cloud)
    cloud.start()
    port = configure_cloud_site(dirac_server, cloud)
    start_cloud_agents(dirac_server, port)
    try:
        yield cloud, port
    finally:
        stop_cloud_agents(dirac_server)
        cloud.stop()
        if request.session.testsfailed:
            print(f"\nLocalCloud VM consoles and pilot logs kept in {cloud.booter.root}")


def _written_files(user_data: bytes):
    """The files the #cloud-config document writes, decoded."""
    for item in yaml.safe_load(user_data)["write_files"]:
        data = base64.b64decode(item["content"])
        yield gzip.decompress(data) if item.get("encoding") == "gz+b64" else data


V010 = "e6bb08a"  # "release.notes for v0.1.0"
V010_RENDER = """
import gzip, json, sys
import JenniferDIRAC
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext, Profile, pack_user_data, render_user_data
assert JenniferDIRAC.__version__ == "0.1.0", JenniferDIRAC.__file__
inputs = json.load(sys.stdin)
profile = Profile(**inputs.pop("profile"))
text = render_user_data(PilotContext(**inputs), profile)
raw = text.encode()
print(json.dumps({"text": len(raw), "gzipped": len(gzip.compress(raw, 9, mtime=0)),
                  "sent": len(pack_user_data(text, 65535))}))
"""


def v010_user_data_size(tmp_path: Path, inputs: dict) -> dict:
    """v0.1.0's user data for the same VM: its own code, from git, run in a subprocess."""
    tree = tmp_path / "v0.1.0"
    tree.mkdir()
    repo = Path(__file__).resolve().parents[2]
    archive = subprocess.run(["git", "-C", str(repo), "archive", V010, "JenniferDIRAC"],
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=60)
    result = subprocess.run([sys.executable, "-c", V010_RENDER], input=json.dumps(inputs), cwd=tree,
                            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _pilots(dirac_server):
    return dirac_server.mariadb.execute(
        "SELECT PilotJobReference, Status FROM PilotAgents WHERE DestinationSite = %s",
        database="PilotAgentsDB", params=(CE,))


def test_the_payload_finds_no_working_credential(dirac_server, cloud_site, tmp_path):
    cloud, port = cloud_site
    script = PAYLOAD.format(url=f"http://127.0.0.1:{port}", looked_at=LOOKED_AT, token=TOKEN)
    encoded = base64.b64encode(script.encode()).decode()
    # The session's PilotAgentsDB holds the pilots of the e2e tests that ran before on this CE.
    before = {ref for ref, _ in _pilots(dirac_server)}
    job_id = dirac_server.submit_job(job_jdl("credentials", "/bin/sh", f"-c 'echo {encoded} | base64 -d | sh'"))

    def new_pilots():
        return [(ref, status) for ref, status in _pilots(dirac_server) if ref not in before]

    ((ref, _),) = wait_for("a pilot submitted through the cloud CE", new_pilots, 120)
    vm_name = ref.rsplit("/", 1)[1]
    (server,) = wait_for("the pilot's VM listed",
                         lambda: [s for s in list(cloud.compute.servers.values()) if s.name == vm_name], 60)
    sent = base64.b64decode(server.user_data)
    user_data = gzip.decompress(sent) if sent.startswith(b"\x1f\x8b") else sent
    dirac_server.wait_job_status(job_id, {"Done"}, timeout=300)
    report = (dirac_server.get_output(job_id, tmp_path / "out") / "std.out").read_text()
    print(f"\nwhat the payload found:\n{report}")

    assert "payload as diracpilot" in report and "PAYLOAD DONE" in report, report
    assert "PROXY in" not in report, report
    for path in ("/var/lib/cloud/instance/user-data.txt", "/etc/jdirac/vm.env", "/etc/jdirac/endpoint.header",
                 "/var/lib/jdirac/bootstrap.out", "/var/lib/jdirac/pilot-wrapper.sh"):
        assert re.search(rf"^(ABSENT|UNREADABLE) {re.escape(path)}$", report, re.M), (path, report)
    # Whatever token it found, nothing accepts it: a bootstrap token is spent (410).
    for scope, fetch, beat in re.findall(r"^TRIED (\S+) bootstrap=(\d+) heartbeat=(\d+)$", report, re.M):
        assert fetch[0] == "4" and beat[0] == "4", report
        if scope == "jdb1":
            assert fetch == "410", report
    # The metadata service is there: the VM's root read it at boot (the runner, as cloud-init's
    # datasource does). The boot script blocked it for every other uid: the payload is refused.
    sandbox = cloud.booter.sandbox(server.id)
    console = sandbox.read_console()
    assert f"datasource: OpenStack metadata service at 169.254.169.254, instance {server.id}" in console
    assert "metadata service 169.254.169.254 blocked for every uid but root (nftables)" in console
    for path in ("/openstack/latest/user_data", "/openstack/latest/meta_data.json", "/latest/user-data"):
        assert re.search(rf"^METADATA {path} http=000 exit=7$", report, re.M), report  # connection refused

    # User data holds the bootstrap token only, no proxy; replayed now, the token is refused (spent).
    readable = user_data + b"".join(_written_files(user_data))
    assert b"-----BEGIN" not in readable
    (bootstrap,) = set(re.findall(TOKEN.encode(), readable))
    assert bootstrap.startswith(b"jdb1.")
    replay = requests.get(f"http://127.0.0.1:{port}/vm/v1/{vm_name}/bootstrap",
                          headers={"Authorization": f"Bearer {bootstrap.decode()}"}, timeout=30)
    assert replay.status_code == 410, replay.text
    # v0.1.0 put the wrapper (with its proxy) and the report token in user data: the same ones.
    wrapper = sandbox.read_vm_file("/var/lib/jdirac/pilot-wrapper.sh").decode()
    header = sandbox.read_vm_file("/etc/jdirac/endpoint.header").decode()
    (report_token,) = re.findall(r"^Authorization: Bearer (\S+)$", header, re.M)
    old = v010_user_data_size(tmp_path, {
        "pilot_reference": ref, "pilot_stamp": uuid.uuid4().hex,  # a DIRAC stamp's length
        "wrapper": wrapper, "vm_name": vm_name, "ce_name": CE, "site": SITE, "vo": VO,
        "max_lifetime": 1800, "endpoint_url": f"http://127.0.0.1:{port}", "endpoint_token": report_token,
        "profile": {"name": "Loopback", "vos": [VO], "template": "el9.cloud-config.j2",
                    "pilot_user": "diracpilot", "heartbeat_seconds": 60,
                    "pilot_environment": {"X509_CERT_DIR": str(dirac_server.roots.cert_dir)}}})
    ours_gzipped = len(gzip.compress(user_data, 9, mtime=0))
    print(f"user data of the pilot VM: {len(sent)} bytes as sent, {len(user_data)} bytes as text, "
          f"{ours_gzipped} bytes gzipped; v0.1.0 ({V010}) for the same VM: {old['sent']} bytes as sent, "
          f"{old['text']} bytes as text, {old['gzipped']} bytes gzipped")
    assert old["text"] > len(wrapper) > len(user_data)  # the wrapper left user data
    wait_for("pilot Done", lambda: [p for p in new_pilots() if p[1] == "Done"], 180)
    assert new_pilots() == [(ref, "Done")]
