"""5,000 servers listed page by page through openstacksdk; LocalCloud's memory stays modest."""

import tracemalloc

import pytest

SERVERS = 5000


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_5000_servers_paginated_with_modest_memory(local_cloud, record_property):
    conn = local_cloud.connect()
    list(conn.compute.flavors())  # authenticate and discover before measuring
    rss_before = _rss_mb()
    tracemalloc.start()
    for i in range(SERVERS):
        local_cloud.compute.add_server(f"pilot-{i:05d}", local_cloud.project_id,
                                       metadata={"jdirac-owner": "ce-1", "jdirac-pilot": f"https://p/{i}"})
    state_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()

    seen = [(s.id, s.name, s.metadata["jdirac-owner"]) for s in conn.compute.servers(limit=1000)]
    rss_after = _rss_mb()

    assert len(seen) == SERVERS and len({sid for sid, _, _ in seen}) == SERVERS
    assert [name for _, name, _ in seen[:2]] == ["pilot-04999", "pilot-04998"]  # newest first
    # five full pages of 1000, then the empty page that ends openstacksdk's pagination
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 6
    record_property("localcloud_state_mb_for_5000_servers", round(state_mb, 1))
    record_property("process_rss_growth_mb", round(rss_after - rss_before, 1))
    print(f"\nLocalCloud state for {SERVERS} servers: {state_mb:.1f} MB (tracemalloc); "
          f"process RSS {rss_before:.0f} -> {rss_after:.0f} MB after listing them with openstacksdk")
    assert state_mb < 25
    assert rss_after - rss_before < 300
