"""LocalCloud's response byte counters and its per-server cost of a detailed listing, as the CE
benchmark uses them (benchmarks/bench_ce.py --per-server-ms), over real HTTP with openstacksdk."""

import time

import openstack


def _connection(cloud):
    c = cloud.credentials
    return openstack.connection.Connection(
        auth_url=c.auth_url, username=c.username, password=c.password, project_name=c.project_name,
        user_domain_name=c.domain_name, project_domain_name=c.domain_name, region_name=c.region_name,
    )


def test_bytes_of_each_response_are_counted_per_route(local_cloud):
    for i in range(3):
        local_cloud.compute.add_server(f"bytes-{i}", local_cloud.project_id, status="ACTIVE")
    conn = _connection(local_cloud)
    conn.authorize()
    local_cloud.counters.reset()
    response = conn.compute.get("/servers/detail")
    assert len(response.json()["servers"]) == 3
    listing = local_cloud.counters.bytes("compute", "GET", "/v2.1/servers/detail")
    assert listing == len(response.content)
    assert local_cloud.counters.bytes("compute") >= listing
    local_cloud.counters.reset()
    assert local_cloud.counters.bytes() == 0
    conn.close()


def test_a_detailed_listing_costs_its_time_per_server_returned(local_cloud):
    for i in range(20):
        local_cloud.compute.add_server(f"slow-{i}", local_cloud.project_id, status="ACTIVE")
    conn = _connection(local_cloud)
    conn.authorize()
    conn.compute.get("/servers/detail")  # version discovery and the connection, before the clock
    local_cloud.compute.detail_seconds_per_server = 0.02
    start = time.monotonic()
    assert len(conn.compute.get("/servers/detail", params={"limit": 5}).json()["servers"]) == 5
    five = time.monotonic() - start
    start = time.monotonic()
    assert len(conn.compute.get("/servers/detail").json()["servers"]) == 20
    twenty = time.monotonic() - start
    assert five >= 5 * 0.02 and twenty >= 20 * 0.02  # a lower bound: the cloud waits at least that
    conn.close()
