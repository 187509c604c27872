"""Real Keystone 30 + Nova 34 on loopback for the tests (started by dev/openstack/launcher.py in
.venv-openstack, a process tree of its own), and the client-side view the tests use of it.

``RealOpenStack`` knows the ready file's URLs and credentials and talks to Nova as the admin for
what a test arranges (quotas, stopping or erroring a VM, listing with user data); the code under
test only ever gets the demo project's credentials. ``ClientCounter`` counts the requests this
process sends to the real cloud, by (service, method, path template), through keystoneauth's
Session (every openstacksdk and keystoneauth call passes there), with the same reading API as
LocalCloud's own counters.
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.util.retry import Retry
from waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENSTACK_PYTHON = REPO_ROOT / ".venv-openstack" / "bin" / "python"
LAUNCHER = REPO_ROOT / "dev" / "openstack" / "launcher.py"
# The launcher's own deadline (dev/openstack/launcher.py) plus a first Keystone bootstrap on a
# fresh clone, which took 57 s on a quiet machine and well over 100 s under load.
START_TIMEOUT = 900.0
LATEST = "2.104"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
# Nova's DbQuotaDriver defaults (nova.conf [quota]), restored after each test
UNCOUNTED = "jdirac_uncounted"
DEFAULT_QUOTA = {"instances": 10, "cores": 20, "ram": 51200}


@dataclass
class ServerView:
    """A server as the tests compare them on both targets."""

    id: str
    name: str
    status: str
    task_state: str | None
    metadata: dict[str, str]
    user_data: str | None  # base64 as stored
    fault: dict[str, Any] | None
    security_groups: list[str]
    availability_zone: str
    raw: dict[str, Any]

    def user_data_text(self) -> str:
        raw = base64.b64decode(self.user_data or "")
        return gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()


class ClientCounter:
    """Requests sent by this process to the real cloud, counted at the client."""

    def __init__(self, services: dict[str, str]) -> None:
        self.services = services  # "scheme://host:port" -> service name
        self.counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._patched = None

    def record(self, method: str, url: str) -> None:
        parts = urlsplit(url)
        service = self.services.get(f"{parts.scheme}://{parts.netloc}")
        if service is None:
            return
        path = parts.path.rstrip("/") or "/"
        for prefix in ("/image", "/network"):
            if path.startswith(prefix + "/") or path == prefix:
                path = path[len(prefix):] or "/"
        if service == "compute" and path == "/v2.1/servers/detail":
            template = path
        else:
            template = UUID.sub(lambda m: "<id>", path)
        with self._lock:
            self.counts[(service, method.upper(), template)] += 1

    def get(self, service: str, method: str, template: str) -> int:
        with self._lock:
            return self.counts[(service, method.upper(), template)]

    def total(self, service: str | None = None) -> int:
        with self._lock:
            return sum(n for (svc, _, _), n in self.counts.items() if service is None or svc == service)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def install(self) -> None:
        """Count at requests' Session.send, where every keystoneauth/openstacksdk request has
        its final URL; the test's own arrangement calls (``UNCOUNTED`` sessions) are left out."""
        real_send = requests.Session.send
        counter = self

        def send(self, request, **kwargs):
            if not getattr(self, UNCOUNTED, False):
                counter.record(request.method, request.url)
            return real_send(self, request, **kwargs)

        requests.Session.send = send
        self._patched = (requests.Session, real_send)

    def uninstall(self) -> None:
        if self._patched:
            cls, real = self._patched
            cls.send = real
            self._patched = None


class RealOpenStack:
    """The running real cloud, as described by the launcher's ready file."""

    def __init__(self, ready: dict[str, Any], workdir: Path) -> None:
        self.ready = ready
        self.workdir = workdir
        self.auth_url = ready["auth_url"]
        self.keystone_url = ready["keystone_url"]
        self.compute_url = ready["compute_url"]
        self.image_id = ready["image_id"]
        self.network_id = ready["network_id"]
        self.demo = ready["demo"]
        self.project_id = self.demo["project_id"]
        self.admin = ready["admin"]
        self.application_credential = ready["application_credential"]
        self.http = requests.Session()
        # Nova's server may close an idle keep-alive connection just as the session reuses it
        # (RemoteDisconnected, seen under load): idempotent requests go again on a new connection
        self.http.mount("http://", requests.adapters.HTTPAdapter(
            max_retries=Retry(total=2, connect=2, read=2, status=0, allowed_methods=Retry.DEFAULT_ALLOWED_METHODS)))
        setattr(self.http, UNCOUNTED, True)  # the test's arrangement is not the code under test
        self._admin_token: str | None = None
        services = {}
        for name, url in (("identity", ready["keystone_url"]), ("compute", ready["compute_url"]),
                          ("image", ready["image_url"]), ("network", ready["network_url"])):
            parts = urlsplit(url)
            services.setdefault(f"{parts.scheme}://{parts.netloc}", name)
        self.service_roots = services

    # --- identity --------------------------------------------------------------------------
    def issue_token(self, user: str, password: str, project: str) -> requests.Response:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"id": "default"}}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        return self.http.post(f"{self.auth_url}/auth/tokens", json=body, timeout=30)

    def demo_token(self) -> str:
        reply = self.issue_token(self.demo["username"], self.demo["password"], self.demo["project_name"])
        reply.raise_for_status()
        return reply.headers["X-Subject-Token"]

    def admin_token(self) -> str:
        if self._admin_token is None:
            reply = self.issue_token("admin", self.admin["password"], "admin")
            reply.raise_for_status()
            self._admin_token = reply.headers["X-Subject-Token"]
        return self._admin_token

    # --- compute as the admin (test arrangement) -------------------------------------------
    def nova(self, method: str, path: str, body: Any = None, microversion: str = LATEST,
             token: str | None = None, expect: tuple[int, ...] = (200, 202, 204)) -> Any:
        headers = {"X-Auth-Token": token or self.admin_token(),
                   "OpenStack-API-Version": f"compute {microversion}"}
        reply = self.http.request(method, f"{self.compute_url}{path}", json=body, headers=headers, timeout=60)
        if reply.status_code not in expect:
            raise AssertionError(f"{method} {path} -> {reply.status_code} {reply.text[:300]}")
        return reply.json() if reply.content else None

    def servers(self, include_deleted: bool = False) -> list[ServerView]:
        query = f"all_tenants=1&project_id={self.project_id}"
        if include_deleted:
            query += "&changes-since=2000-01-01T00:00:00Z"
        body = self.nova("GET", f"/servers/detail?{query}")
        return [_view(s) for s in body["servers"]]

    def live_servers(self) -> list[ServerView]:
        """Neither deleted nor being deleted (Nova lists both for a while)."""
        return [s for s in self.servers() if s.task_state != "deleting" and s.status != "DELETED"]

    def server(self, server_id: str) -> dict[str, Any]:
        return self.nova("GET", f"/servers/{server_id}")["server"]

    def wait_status(self, server_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        return wait_until(lambda: (s := self.server(server_id))["status"] == status and
                          not s.get("OS-EXT-STS:task_state") and s, timeout, f"server {server_id} {status}")

    def create_server(self, name: str, metadata: dict[str, str] | None = None, token: str | None = None,
                      **extra: Any) -> str:
        spec = {"name": name, "imageRef": self.image_id, "flavorRef": "2", "networks": "none",
                "metadata": dict(metadata or {}), **extra}
        body = self.nova("POST", "/servers", {"server": spec}, token=token or self.demo_token())
        return body["server"]["id"]

    def stop(self, server_id: str) -> None:
        self.wait_status(server_id, "ACTIVE")
        self.nova("POST", f"/servers/{server_id}/action", {"os-stop": None})
        self.wait_status(server_id, "SHUTOFF")

    def set_error(self, server_id: str) -> None:
        self.wait_status(server_id, "ACTIVE")
        self.nova("POST", f"/servers/{server_id}/action", {"os-resetState": {"state": "error"}})
        self.wait_status(server_id, "ERROR")

    def set_quota(self, instances: int | None = None, cores: int | None = None, ram: int | None = None) -> None:
        values = {k: v for k, v in {"instances": instances, "cores": cores, "ram": ram}.items() if v is not None}
        self.nova("PUT", f"/os-quota-sets/{self.project_id}", {"quota_set": values})

    def reset(self) -> None:
        """Back to an empty demo project with Nova's default quota (after each test)."""
        self.set_quota(**DEFAULT_QUOTA)
        for server in self.servers():
            if server.task_state != "deleting":
                self.nova("DELETE", f"/servers/{server.id}", expect=(204, 404))
        wait_until(lambda: self.servers() == [], 120, "demo project emptied")

    def clouds_yaml_entry(self) -> dict[str, Any]:
        return {"auth": {"auth_url": self.auth_url, "username": self.demo["username"],
                         "password": self.demo["password"], "project_name": self.demo["project_name"],
                         "user_domain_name": "Default", "project_domain_name": "Default"},
                "region_name": self.ready["region"], "identity_api_version": 3}


def _view(body: dict[str, Any]) -> ServerView:
    return ServerView(
        id=body["id"], name=body["name"], status=body["status"],
        task_state=body.get("OS-EXT-STS:task_state"), metadata=dict(body.get("metadata") or {}),
        user_data=body.get("OS-EXT-SRV-ATTR:user_data"), fault=body.get("fault"),
        security_groups=[g["name"] for g in body.get("security_groups") or []],
        availability_zone=body.get("OS-EXT-AZ:availability_zone") or "", raw=body,
    )


@contextmanager
def running_openstack(workdir: Path, keep_logs):
    """Start the launcher in its own session, yield a RealOpenStack, stop the whole tree.

    ``keep_logs()`` is asked at the end: if true the workdir (logs) stays and its path is printed.
    A developer iterating on tests can point JDIRAC_REAL_OPENSTACK_READY at the ready.json of a
    launcher already running; it is then used and left running.
    """
    attached = os.environ.get("JDIRAC_REAL_OPENSTACK_READY")
    if attached:
        cloud = RealOpenStack(json.loads(Path(attached).read_text()), Path(attached).parent)
        cloud.start_seconds = 0.0
        yield cloud
        return
    if not OPENSTACK_PYTHON.exists():
        subprocess.run(["bash", str(REPO_ROOT / "dev" / "openstack" / "setup.sh")], check=True)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.Popen([str(OPENSTACK_PYTHON), str(LAUNCHER), "--workdir", str(workdir)],
                            stdout=open(workdir / "launcher.stdout.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    ready_file = workdir / "ready.json"
    up = False
    try:
        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"real OpenStack launcher exited with {proc.returncode}; logs in {workdir}")
            return ready_file.exists()

        wait_until(ready, START_TIMEOUT, "real OpenStack ready file", interval=0.5)
        cloud = RealOpenStack(json.loads(ready_file.read_text()), workdir)
        cloud.start_seconds = time.monotonic() - started
        up = True
        yield cloud
    finally:
        _stop_tree(proc)
        # A failed start is reported before the session counts it as failed: keep its logs too.
        if not up or keep_logs():
            print(f"\nreal OpenStack logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _stop_tree(proc: subprocess.Popen) -> None:
    """TERM the launcher (it stops its children), then KILL its whole process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def spy_sdk_deletes(backend, monkeypatch) -> list[str]:
    """The URLs of the DELETEs an OpenStackBackend sends through the SDK's compute proxy (its
    path after a 401), recorded while the proxy still sends them."""
    sent: list[str] = []
    proxy_delete = backend.connection.compute.delete

    def spy(url, *args, **kwargs):
        sent.append(url)
        return proxy_delete(url, *args, **kwargs)

    monkeypatch.setattr(backend.connection.compute, "delete", spy)
    return sent
