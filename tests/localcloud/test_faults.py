"""Every fault kind LocalCloud injects is reproducible and observable through real clients."""

import time

import openstack.exceptions
import pytest
import requests

from JenniferLocalCloud import LocalCloud
from JenniferLocalCloud.faults import FaultInjector

DETAIL = "/v2.1/servers/detail"


def _create(conn, name="vm"):
    image = conn.image.find_image("EL9-x86_64")
    return conn.compute.create_server(name=name, image_id=image.id, flavor_id="2", networks="auto")


def _authed(cloud):
    conn = cloud.connect()
    return conn, {"X-Auth-Token": conn.session.get_token()}


@pytest.mark.parametrize("status, key", [(500, "computeFault"), (503, "serviceUnavailable")])
def test_http_error_once_then_recovers(local_cloud, status, key):
    conn, headers = _authed(local_cloud)
    rule = local_cloud.faults.http_error(status, service="compute", method="GET", path=DETAIL)
    r = requests.get(f"{local_cloud.base_url}/compute/v2.1/servers/detail", headers=headers, timeout=5)
    assert r.status_code == status and r.json()[key]["code"] == status
    assert list(conn.compute.servers()) == []  # times=1: the next call is fine
    assert rule.fired == 1
    assert [(e.kind, e.detail) for e in local_cloud.faults.events] == [("http_error", str(status))]


def test_http_error_surfaces_in_openstacksdk(local_cloud):
    conn = local_cloud.connect()
    local_cloud.faults.http_error(500, service="compute", path="/v2.1/servers*", times=None)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(conn.compute.servers())
    assert err.value.status_code == 500
    assert local_cloud.faults.count("http_error") == 1


def test_timeout_and_dropped_connection(local_cloud):
    _, headers = _authed(local_cloud)
    url = f"{local_cloud.base_url}/compute/v2.1/flavors"
    local_cloud.faults.timeout(seconds=60, path="/v2.1/flavors")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, headers=headers, timeout=0.5)
    local_cloud.faults.drop_connection(path="/v2.1/flavors")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, headers=headers, timeout=5)
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    assert [e.kind for e in local_cloud.faults.events] == ["timeout", "drop"]


def test_expired_token_gives_401_and_client_reauthenticates(local_cloud):
    conn = local_cloud.connect()
    list(conn.compute.servers())
    local_cloud.faults.expire_token(service="compute")
    assert list(conn.compute.servers()) == []
    assert local_cloud.counters.get("identity", "POST", "/v3/auth/tokens") == 2
    assert local_cloud.faults.count("expire_token") == 1
    # The expired token itself is gone on the cloud, as after a real expiry.
    assert len(local_cloud.identity.tokens) == 1


def test_quota_refused_and_quota_recheck(local_cloud):
    conn = local_cloud.connect()
    local_cloud.faults.refuse_next_creates_for_quota(1)
    with pytest.raises(openstack.exceptions.ForbiddenException) as err:
        _create(conn)
    assert "Quota exceeded for instances: Requested 1, but already used 0 of 0 instances" in str(err.value)

    local_cloud.faults.quota_recheck_next_vms(1)
    server = conn.compute.get_server(_create(conn).id)
    assert server.status == "ERROR"
    assert server.fault["code"] == 413 and server.fault["message"].startswith("Quota exceeded for instances")
    assert [e.kind for e in local_cloud.faults.events] == ["quota_refused", "quota_recheck"]


def test_vm_to_error_and_stuck_in_build(local_cloud):
    conn = local_cloud.connect()
    local_cloud.faults.error_next_vms(1, message="No valid host was found.")
    local_cloud.faults.stick_next_vms_in_build(1)
    failed, stuck, fine = (_create(conn, n) for n in ("failed", "stuck", "fine"))
    local_cloud.advance_time(3600)
    states = {s.name: (s.status, s.task_state) for s in conn.compute.servers()}
    assert states == {"failed": ("ERROR", None), "stuck": ("BUILD", "spawning"), "fine": ("ACTIVE", None)}
    assert conn.compute.get_server(failed.id).fault["message"] == "No valid host was found."


def test_build_delay_on_the_cloud_clock():
    with LocalCloud(build_seconds=120, tick_seconds=3600) as cloud:
        conn = cloud.connect()
        server = _create(conn)
        assert conn.compute.get_server(server.id).status == "BUILD"
        cloud.advance_time(121)
        assert conn.compute.get_server(server.id).status == "ACTIVE"


def test_latency_per_request(local_cloud):
    conn, headers = _authed(local_cloud)
    local_cloud.faults.slow(0.3, service="compute", path="/v2.1/flavors")
    started = time.monotonic()
    requests.get(f"{local_cloud.base_url}/compute/v2.1/flavors", headers=headers, timeout=5)
    assert time.monotonic() - started >= 0.3
    assert local_cloud.faults.count("latency") == 1


def _pattern(seed):
    faults = FaultInjector(seed=seed)
    faults.random_errors(0.3, service="compute")
    fired = []
    for _ in range(200):
        rule = faults.before_request("compute", "GET", DETAIL)
        fired.append(rule.status if rule else 200)
    return fired


def test_random_faults_are_reproducible_by_seed():
    first, again, other = _pattern(7), _pattern(7), _pattern(8)
    assert first == again
    assert first != other
    assert {500, 503, 200} == set(first)
    assert 30 <= sum(1 for s in first if s != 200) <= 90


def test_scripted_faults_over_http(local_cloud):
    conn = local_cloud.connect()
    local_cloud.faults.script([
        {"kind": "http_error", "status": 503, "service": "compute", "method": "POST", "path": "/v2.1/servers"},
        {"kind": "error", "count": 2},
    ])
    with pytest.raises(openstack.exceptions.HttpException) as err:
        _create(conn)
    assert err.value.status_code == 503
    statuses = [conn.compute.get_server(_create(conn, f"v{i}").id).status for i in range(3)]
    assert statuses == ["ERROR", "ERROR", "ACTIVE"]
    assert local_cloud.counters.get("compute", "POST", "/v2.1/servers") == 4


def test_cloud_wide_latency_setting():
    with LocalCloud(latency=0.2) as cloud:
        started = time.monotonic()
        requests.get(f"{cloud.base_url}/compute/v2.1", timeout=5)
        assert time.monotonic() - started >= 0.2
