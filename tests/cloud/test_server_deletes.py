"""OpenStackBackend.delete_vms sends each DELETE on the session's connections with its token
(serverdeletes.py), and leaves to the SDK's compute proxy only what needs it: a 401 (to
re-authenticate) and answers that are neither success nor error. Real HTTP to LocalCloud."""

from __future__ import annotations

import socket

import pytest
from openstack_testkit import spy_sdk_deletes
from test_openstack_backend import TOKENS, password_backend

from JenniferDIRAC.Resources.Cloud.references import make_vm_name
from JenniferDIRAC.Resources.Cloud.serverdeletes import ServerDeletes

DELETE = ("compute", "DELETE", "/v2.1/servers/<server_id>")


@pytest.fixture
def backend(local_cloud):
    backend = password_backend(local_cloud)
    backend.list_vms(_owner())  # the token and the compute endpoint, as a cycle has them before deleting
    yield backend
    backend.close()


@pytest.fixture
def sdk_deletes(backend, monkeypatch):
    return spy_sdk_deletes(backend, monkeypatch)


def _owner():
    from JenniferDIRAC.Resources.Cloud.model import OwnerTags

    return OwnerTags(installation="install-a", ce="ce.deletes.example", vo="vo1")


def _servers(cloud, count: int) -> list[str]:
    return [cloud.compute.add_server(make_vm_name(), cloud.project_id, metadata=_owner().to_metadata()).id
            for _ in range(count)]


def _live(cloud, ids: list[str]) -> set[str]:
    """The servers of `ids` the cloud has not started deleting."""
    return {i for i in ids if i in cloud.compute.servers and cloud.compute.servers[i].delete_at is None}


def test_deletes_go_straight_to_the_cloud_with_the_sessions_token(local_cloud, backend, sdk_deletes):
    ids = _servers(local_cloud, 12)
    local_cloud.counters.reset()
    assert backend.delete_vms(ids + ["no-such-server"]) == {}  # an unknown id is already deleted
    assert sdk_deletes == []
    assert local_cloud.counters.snapshot() == {DELETE: 13}  # no token, discovery or lookup request
    assert _live(local_cloud, ids) == set()


def test_an_expired_token_is_renewed_through_the_sdk_and_the_new_one_kept(local_cloud, backend, sdk_deletes):
    first, second = _servers(local_cloud, 2)
    local_cloud.faults.expire_token(service="compute", method="DELETE", times=1)
    local_cloud.counters.reset()
    assert backend.delete_vms([first]) == {}
    assert len(sdk_deletes) == 1  # the 401: keystoneauth re-authenticated and sent it again
    assert local_cloud.counters.get(*TOKENS) == 1
    assert backend.delete_vms([second]) == {}
    assert len(sdk_deletes) == 1  # the next one goes straight again, with the renewed token
    assert local_cloud.counters.get(*TOKENS) == 1
    assert local_cloud.counters.get(*DELETE) == 3
    assert _live(local_cloud, [first, second]) == set()


def test_an_error_answer_is_that_vms_error_as_the_sdk_words_it_and_not_sent_again(local_cloud, backend, sdk_deletes):
    failing, fine = _servers(local_cloud, 2)
    local_cloud.faults.http_error(503, service="compute", method="DELETE", times=1)
    local_cloud.counters.reset()
    errors = backend.delete_vms([failing])
    assert list(errors) == [failing]
    assert errors[failing].startswith(f"deleting server {failing}: HTTP 503")
    assert sdk_deletes == [] and local_cloud.counters.get(*DELETE) == 1
    assert backend.delete_vms([failing, fine]) == {}
    assert _live(local_cloud, [failing, fine]) == set()


def test_a_dropped_connection_is_that_vms_error_without_the_token(local_cloud, backend, sdk_deletes):
    (server,) = _servers(local_cloud, 1)
    local_cloud.faults.drop_connection(service="compute", method="DELETE", times=1)
    errors = backend.delete_vms([server])
    assert list(errors) == [server]
    assert errors[server].startswith(f"deleting server {server}: ")
    assert "connection" in errors[server].lower()
    assert backend.session.get_token() not in errors[server]
    assert local_cloud.credentials.password not in errors[server]
    assert sdk_deletes == []


def test_the_environments_proxy_is_used_as_requests_uses_it(local_cloud, backend, sdk_deletes, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on: the proxy cannot be reached
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (server,) = _servers(local_cloud, 1)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    local_cloud.counters.reset()
    errors = backend.delete_vms([server])
    assert list(errors) == [server] and "proxy" in errors[server].lower()
    assert local_cloud.counters.get(*DELETE) == 0  # not sent around the proxy
    assert _live(local_cloud, [server]) == {server}


def test_without_a_token_to_send_the_delete_is_left_to_the_sdk(local_cloud, backend):
    class NoAuthHeaders:
        """A session whose plugin gives no headers (keystoneauth answers None then)."""

        def __init__(self, session):
            self.session, self.verify, self.cert, self.timeout = session.session, session.verify, session.cert, None

        @staticmethod
        def get_auth_headers():
            return None

    deletes = ServerDeletes(NoAuthHeaders(backend.session), backend.listing_scope()[3])
    (server,) = _servers(local_cloud, 1)
    assert deletes.delete(server) is False
    assert _live(local_cloud, [server]) == {server}
