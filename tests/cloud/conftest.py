"""Fixtures for the cloud-access tests: moto's EC2 server (and a boto3 client of it) and a small
OIDC token endpoint, both on loopback ports chosen at run time."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
import requests
from waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, deadline_s: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until any HTTP answer comes back, or fail at the deadline."""

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=1)
        except requests.ConnectionError:
            return False
        return True

    wait_until(answers, deadline_s, f"{url} to answer", interval=0.05)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@contextlib.contextmanager
def moto_server(log_dir: Path, **settings: str):
    """moto's server mode on a free loopback port, with moto `settings` (environment variables):
    (host, port)."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", **settings}
    with open(log_dir / "moto.log", "wb") as out:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/moto-api/", process=process)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def moto_ec2(tmp_path_factory):
    """moto's EC2 server, accepting any AMI and credentials: (host, port)."""
    with moto_server(tmp_path_factory.mktemp("moto")) as address:
        yield address


@pytest.fixture(scope="module")
def moto_ec2_validating(tmp_path_factory):
    """moto's EC2 server refusing unknown AMIs and instance types, as EC2 does."""
    with moto_server(tmp_path_factory.mktemp("moto-validating"), MOTO_ENABLE_AMI_VALIDATION="1",
                     MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION="1") as address:
        yield address


@pytest.fixture(scope="module")
def moto_ec2_authenticating(tmp_path_factory):
    """moto's EC2 server checking every request's credentials against its IAM."""
    with moto_server(tmp_path_factory.mktemp("moto-auth"), INITIAL_NO_AUTH_ACTION_COUNT="0") as address:
        yield address


@pytest.fixture
def boto(moto_ec2):
    """A boto3 EC2 client of moto's server, to see what the cloud holds."""
    host, port = moto_ec2
    return boto3.client("ec2", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def ec2_namespace(monkeypatch):
    """moto answers in the EC2 namespace without libcloud's trailing slash."""
    import libcloud.compute.drivers.ec2 as ec2

    monkeypatch.setattr(ec2, "NAMESPACE", ec2.NAMESPACE.rstrip("/"))


@pytest.fixture
def azure():
    """A loopback Azure Resource Manager + Azure AD (azure_arm_standin.py); its URL in `.url`."""
    from azure_arm_standin import AzureStandIn
    from loopback_http import LoopbackServer

    standin = AzureStandIn()
    with LoopbackServer(standin) as server:
        standin.url = server.url
        yield standin


class TokenEndpoint:
    """An OAuth2 token endpoint (refresh_token grant) served by werkzeug on loopback.

    ``grants`` maps refresh tokens to the access token handed out; every request is recorded.
    """

    def __init__(self, client_id: str, client_secret: str, expires_in: int = 3600) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.grants: dict[str, list[str]] = {}
        self.requests: list[dict[str, str]] = []
        self.fail_with: int | None = None
        self._server = None
        self._thread = None
        self.url = ""

    def add_grant(self, refresh_token: str, access_tokens: list[str]) -> None:
        """Each exchange of `refresh_token` hands out the next of `access_tokens`."""
        self.grants[refresh_token] = list(access_tokens)

    def app(self, environ, start_response):
        import base64
        import json

        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        form = dict(request.form)
        self.requests.append(form)
        client_id = form.get("client_id")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            client_ok = client_id == self.client_id and secret == self.client_secret
        else:
            client_ok = client_id == self.client_id and not self.client_secret
        if self.fail_with:
            response = Response("unavailable", status=self.fail_with)
        elif not client_ok:
            response = Response(json.dumps({"error": "invalid_client"}), status=401,
                                content_type="application/json")
        elif form.get("grant_type") != "refresh_token" or not self.grants.get(form.get("refresh_token", "")):
            response = Response(json.dumps({"error": "invalid_grant"}), status=400,
                                content_type="application/json")
        else:
            token = self.grants[form["refresh_token"]].pop(0)
            body = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
            response = Response(json.dumps(body), content_type="application/json")
        return response(environ, start_response)

    def start(self) -> None:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)


@pytest.fixture
def token_endpoint():
    endpoint = TokenEndpoint(client_id="jdirac-test-client", client_secret="client-s3cret-value")
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()
