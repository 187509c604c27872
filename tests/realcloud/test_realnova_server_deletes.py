"""OpenStackBackend.delete_vms against real Nova 34 and Keystone 30: each DELETE goes straight to
the compute endpoint the SDK's proxy has from Keystone's catalog, with the session's token
(serverdeletes.py). An emulator cannot prove that real Nova's catalog endpoint and answers (204,
404) are what that path expects. The 401 path (the SDK re-authenticates) is tested on LocalCloud
(tests/cloud/test_server_deletes.py): Nova's keystonemiddleware keeps accepting a revoked token
until its token cache forgets it (token_cache_time, 300 s by default)."""

from __future__ import annotations

import uuid

import pytest
from openstack_testkit import spy_sdk_deletes


@pytest.fixture
def sdk_deletes(backend, monkeypatch):
    return spy_sdk_deletes(backend, monkeypatch)


def test_real_nova_deletes_go_straight_and_an_unknown_id_is_already_deleted(real_openstack, backend, sdk_deletes):
    ids = [real_openstack.create_server(f"jdirac-delete-{uuid.uuid4().hex[:8]}") for _ in range(3)]
    assert backend.delete_vms(ids + [str(uuid.uuid4())]) == {}
    assert sdk_deletes == []
    live = {s.id for s in real_openstack.live_servers()}
    assert live.isdisjoint(ids)


def test_real_novas_refusal_is_that_vms_error_as_the_sdk_words_it_and_not_sent_again(real_openstack, backend,
                                                                                     sdk_deletes):
    server = real_openstack.create_server(f"jdirac-delete-{uuid.uuid4().hex[:8]}")
    real_openstack.wait_status(server, "ACTIVE")
    demo = real_openstack.demo_token()
    real_openstack.nova("POST", f"/servers/{server}/action", {"lock": None}, token=demo, expect=(202,))
    errors = backend.delete_vms([server])  # Nova refuses to delete a locked server to its owner: 409
    assert list(errors) == [server]
    assert errors[server].startswith(f"deleting server {server}: HTTP 409") and "locked" in errors[server]
    assert sdk_deletes == []
    assert server in {s.id for s in real_openstack.live_servers()}
    real_openstack.nova("POST", f"/servers/{server}/action", {"unlock": None}, token=demo, expect=(202,))
    assert backend.delete_vms([server]) == {}
