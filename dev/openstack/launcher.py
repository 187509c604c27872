"""Start real Keystone 30 + Nova 34 on 127.0.0.1 (random ports) and write a ready file.

Run with .venv-openstack's python (built by dev/openstack/setup.sh):
    .venv-openstack/bin/python dev/openstack/launcher.py --workdir DIR [--hosts N]
Children: keystone_server.py (Keystone's WSGI app, sqlite, fernet, cheap bcrypt) and
nova_server.py (every Nova service in one process, plus the image/network stand-in). Keystone is
bootstrapped once into a template folder (var/openstack-template, ~25 s) that later starts copy.
DIR gets keystone.log, nova.log, launcher.log and, when everything answers, ready.json:
URLs, admin and demo credentials, an application credential of the demo user, ids of Nova's
fixture image and network. SIGTERM/SIGINT stop both children (KILL after 10 s) and then exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
REGION = "RegionOne"
ADMIN_PASSWORD = "admin-loopback-only"
DEMO_PASSWORD = "demo-loopback-only"
IMAGE_ID = "155d900f-4e14-4e4c-a73d-069cbf4541e6"  # nova.tests.fixtures.GlanceFixture.image1
NETWORK_ID = "3cb9bc59-5699-4588-a4b1-b87f96708bc6"  # nova.tests.fixtures.NeutronFixture.network_1
# Seconds for Keystone and Nova to come up once the Keystone template exists (about 40 s on a
# quiet 2-core machine, several times that under load); building the template is not counted.
START_TIMEOUT = 420.0
STOP_GRACE = 10.0

log = logging.getLogger("launcher")

KEYSTONE_CONF = """\
[DEFAULT]
log_file = {log_file}
debug = false
[database]
connection = sqlite:///{data}/keystone.db
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = {data}/fernet-keys
[fernet_receipts]
key_repository = {data}/fernet-keys
[credential]
key_repository = {data}/credential-keys
[identity]
password_hash_rounds = 4
[cache]
enabled = false
"""

NOVA_CONF = """\
[DEFAULT]
compute_driver = fake.FakeDriver
[api]
auth_strategy = keystone
response_validation = warn
[wsgi]
api_paste_config = {venv}/etc/nova/api-paste.ini
[keystone_authtoken]
www_authenticate_uri = {keystone}/v3
auth_url = {keystone}/v3
auth_type = password
username = admin
password = {password}
project_name = admin
user_domain_id = default
project_domain_id = default
region_name = {region}
interface = public
"""


def wait_for(predicate, what: str, deadline: float, proc: subprocess.Popen | None = None):
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode} (see its log)")
        try:
            value = predicate()
        except (OSError, requests.RequestException):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not ready in time")


def template_key() -> str:
    text = (REPO / "requirements" / "openstack-lock.txt").read_bytes() + KEYSTONE_CONF.encode()
    return hashlib.sha256(text).hexdigest()[:16]


def keystone_template(root: Path) -> Path:
    """The bootstrapped Keystone data (sqlite + key folders), built once per lock file."""
    target = root / template_key()
    if (target / "keystone.db").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="keystone-template-", dir=root))
    for folder in ("fernet-keys", "credential-keys"):
        (build / folder).mkdir(mode=0o700)
    conf = build / "keystone.conf"
    conf.write_text(KEYSTONE_CONF.format(data=build, log_file=build / "bootstrap.log"))
    manage = [str(VENV_BIN / "keystone-manage"), "--config-file", str(conf)]
    uid, gid = str(os.getuid()), str(os.getgid())
    log.info("bootstrapping the Keystone template in %s", build)
    for step in (["db_sync"],
                 ["fernet_setup", "--keystone-user", uid, "--keystone-group", gid],
                 ["credential_setup", "--keystone-user", uid, "--keystone-group", gid],
                 ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", REGION,
                  "--bootstrap-public-url", "http://127.0.0.1:1/v3"]):
        subprocess.run(manage + step, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        build.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(build, ignore_errors=True)
    return target


class Keystone:
    """Admin calls against the running Keystone (plain REST: what the tests will check)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token = self.issue("admin", ADMIN_PASSWORD, "admin")[0]

    def issue(self, user: str, password: str, project: str) -> tuple[str, dict]:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"id": "default"}}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        reply = requests.post(f"{self.url}/v3/auth/tokens", json=body, timeout=30)
        reply.raise_for_status()
        return reply.headers["X-Subject-Token"], reply.json()["token"]

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> dict:
        reply = requests.request(method, f"{self.url}/v3{path}", timeout=30,
                                 headers={"X-Auth-Token": token or self.token}, **kwargs)
        reply.raise_for_status()
        return reply.json() if reply.content else {}

    def find(self, collection: str, name: str) -> dict:
        return self.call("GET", f"/{collection}", params={"name": name})[collection][0]

    def register(self, kind: str, name: str, url: str) -> None:
        service = self.call("POST", "/services", json={"service": {"type": kind, "name": name}})["service"]
        self.call("POST", "/endpoints", json={"endpoint": {
            "service_id": service["id"], "interface": "public", "region_id": REGION, "url": url}})

    def set_identity_url(self, url: str) -> None:
        for endpoint in self.call("GET", "/endpoints")["endpoints"]:
            self.call("PATCH", f"/endpoints/{endpoint['id']}", json={"endpoint": {"url": url}})

    def demo_project(self) -> dict:
        project = self.call("POST", "/projects", json={"project": {
            "name": "demo", "domain_id": "default"}})["project"]
        user = self.call("POST", "/users", json={"user": {
            "name": "demo", "password": DEMO_PASSWORD, "domain_id": "default",
            "default_project_id": project["id"]}})["user"]
        member = self.find("roles", "member")
        self.call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{member['id']}")
        token = self.issue("demo", DEMO_PASSWORD, "demo")[0]
        appcred = self.call("POST", f"/users/{user['id']}/application_credentials", token=token,
                            json={"application_credential": {"name": "jdirac-tests"}})
        return {"project": project, "user": user, "appcred": appcred["application_credential"]}


class Launcher:
    def __init__(self, workdir: Path, hosts: int, template_root: Path) -> None:
        self.workdir = workdir
        self.hosts = hosts
        self.template_root = template_root
        self.children: list[subprocess.Popen] = []

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.workdir / f"{name}.stdout.log", "ab")
        proc = subprocess.Popen([sys.executable, str(HERE / f"{name}_server.py"), *args],
                                stdout=out, stderr=subprocess.STDOUT, cwd=HERE)
        self.children.append(proc)
        return proc

    def start(self) -> dict:
        started = time.monotonic()
        template = keystone_template(self.template_root)  # once per lock file: minutes under load
        deadline = time.monotonic() + START_TIMEOUT
        data = self.workdir / "keystone"
        shutil.copytree(template, data, ignore=shutil.ignore_patterns("*.conf", "*.log"))
        conf = self.workdir / "keystone.conf"
        conf.write_text(KEYSTONE_CONF.format(data=data, log_file=self.workdir / "keystone.log"))
        keystone_proc = self.spawn("keystone", [str(conf), str(self.workdir / "keystone.port")])
        port = wait_for(lambda: _read(self.workdir / "keystone.port"), "keystone port", deadline, keystone_proc)
        keystone_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{keystone_url}/v3", timeout=5).ok, "keystone", deadline, keystone_proc)
        keystone = Keystone(keystone_url)
        keystone.set_identity_url(f"{keystone_url}/v3")
        demo = keystone.demo_project()
        log.info("keystone up at %s after %.1f s", keystone_url, time.monotonic() - started)

        nova_conf = self.workdir / "nova.conf"
        nova_conf.write_text(NOVA_CONF.format(venv=VENV_BIN.parent, keystone=keystone_url,
                                              password=ADMIN_PASSWORD, region=REGION))
        nova_proc = self.spawn("nova", [str(nova_conf), str(self.workdir), str(self.workdir / "nova.log"),
                                        str(self.hosts)])
        nova_port = wait_for(lambda: _read(self.workdir / "nova.port"), "nova port", deadline, nova_proc)
        standin_port = wait_for(lambda: _read(self.workdir / "standin.port"), "stand-in port", deadline,
                                nova_proc)
        compute_url = f"http://127.0.0.1:{nova_port}/v2.1"
        standin_url = f"http://127.0.0.1:{standin_port}"
        keystone.register("compute", "nova", compute_url)
        keystone.register("image", "glance-standin", f"{standin_url}/image")
        keystone.register("network", "neutron-standin", f"{standin_url}/network")

        def computes_up() -> bool:
            reply = requests.get(f"{compute_url}/os-services", timeout=10,
                                 headers={"X-Auth-Token": keystone.token})
            services = reply.json().get("services", []) if reply.ok else []
            up = [s for s in services if s["binary"] == "nova-compute" and s["state"] == "up"]
            return len(up) >= self.hosts

        wait_for(computes_up, "nova computes", deadline, nova_proc)
        log.info("nova up at %s after %.1f s", compute_url, time.monotonic() - started)
        return {
            "pid": os.getpid(),
            "started_seconds": round(time.monotonic() - started, 1),
            "region": REGION,
            "auth_url": f"{keystone_url}/v3",
            "keystone_url": keystone_url,
            "compute_url": compute_url,
            "image_url": f"{standin_url}/image",
            "network_url": f"{standin_url}/network",
            "admin": {"username": "admin", "password": ADMIN_PASSWORD, "project_name": "admin",
                      "user_domain_name": "Default", "project_domain_name": "Default"},
            "demo": {"username": "demo", "password": DEMO_PASSWORD, "project_name": "demo",
                     "project_id": demo["project"]["id"], "user_id": demo["user"]["id"],
                     "user_domain_name": "Default", "project_domain_name": "Default"},
            "application_credential": {"id": demo["appcred"]["id"], "secret": demo["appcred"]["secret"]},
            "image_id": IMAGE_ID,
            "network_id": NETWORK_ID,
            "compute_hosts": self.hosts,
            "logs": {name: str(self.workdir / f"{name}.log") for name in ("keystone", "nova", "launcher")},
        }

    def stop(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.terminate()
        end = time.monotonic() + STOP_GRACE
        for proc in self.children:
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--hosts", type=int, default=1, help="fake-driver compute hosts")
    parser.add_argument("--template-dir", type=Path, default=REPO / "var" / "openstack-template")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=args.workdir / "launcher.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    launcher = Launcher(args.workdir.resolve(), args.hosts, args.template_dir.resolve())
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        ready = launcher.start()
        tmp = args.workdir / "ready.json.tmp"
        tmp.write_text(json.dumps(ready, indent=1))
        os.chmod(tmp, 0o600)
        tmp.rename(args.workdir / "ready.json")
        while not stopping.wait(1.0):
            for proc in launcher.children:
                if proc.poll() is not None:
                    log.error("child %s exited with %s", proc.args[1], proc.returncode)
                    return 1
        return 0
    except Exception:
        log.exception("start failed")
        return 1
    finally:
        launcher.stop()


if __name__ == "__main__":
    sys.exit(main())
