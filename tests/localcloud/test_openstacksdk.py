"""openstacksdk against LocalCloud over real HTTP: every auth method and the calls the project uses."""

import keystoneauth1.exceptions
import openstack
import openstack.exceptions
import pytest
import requests

from JenniferLocalCloud.compute import DELETE_SECONDS

AUTH_TYPES = ["password", "v3applicationcredential", "v3oidcaccesstoken"]


def _boot(conn, name, **extra):
    image = conn.image.find_image("EL9-x86_64")
    flavor = conn.compute.find_flavor("m1.small")
    network = conn.network.find_network("private")
    return conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                      networks=[{"uuid": network.id}], **extra)


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_each_auth_method_connects_and_lists(local_cloud, auth_type):
    conn = local_cloud.connect(auth_type)
    assert [s.name for s in conn.compute.servers()] == []
    assert conn.current_project_id == local_cloud.project_id
    assert local_cloud.counters.get("identity", "POST", "/v3/auth/tokens") >= 1
    if auth_type == "v3oidcaccesstoken":
        template = "/v3/OS-FEDERATION/identity_providers/<idp>/protocols/<protocol>/auth"
        assert local_cloud.counters.get("identity", "POST", template) == 1


def test_wrong_password_and_unknown_oidc_token_are_refused(local_cloud):
    entry = local_cloud.clouds_yaml_entry("password")
    entry["auth"]["password"] = "wrong"
    conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
    with pytest.raises(keystoneauth1.exceptions.Unauthorized) as err:
        list(conn.compute.servers())
    assert err.value.http_status == 401
    entry = local_cloud.clouds_yaml_entry("v3oidcaccesstoken")
    entry["auth"]["access_token"] = "not-accepted"
    conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
    with pytest.raises(keystoneauth1.exceptions.Unauthorized):
        list(conn.compute.servers())


def test_server_lifecycle_metadata_console(local_cloud):
    conn = local_cloud.connect()
    server = _boot(conn, "pilot-1", metadata={"owner": "jdirac"}, user_data="IyEvYmluL3NoCmVjaG8gaGkK")
    server = conn.compute.wait_for_server(server, wait=10, interval=0.05)
    assert server.status == "ACTIVE"
    assert server.flavor.vcpus == 1 and server.flavor.original_name == "m1.small"
    assert server.metadata == {"owner": "jdirac"}
    assert server.addresses["private"][0]["addr"].startswith("10.0.")

    conn.compute.set_server_metadata(server, heartbeat="now")
    assert conn.compute.get_server_metadata(server).metadata == {"owner": "jdirac", "heartbeat": "now"}
    conn.compute.delete_server_metadata(server, ["heartbeat"])
    assert conn.compute.get_server(server.id).metadata == {"owner": "jdirac"}

    output = conn.compute.get_server_console_output(server, length=5)["output"]
    assert server.id in output

    local_cloud.compute.set_state(server.id, "ERROR", fault={"code": 500, "message": "disk on fire"})
    shown = conn.compute.get_server(server.id)
    assert shown.status == "ERROR" and shown.fault["message"] == "disk on fire"

    conn.compute.delete_server(server)
    (deleting,) = conn.compute.servers()  # as in Nova: still listed, and counted, while deleted
    assert deleting.id == server.id and deleting.task_state == "deleting"
    assert conn.compute.get_limits().absolute.instances_used == 1
    conn.compute.delete_server(server)  # a second DELETE is accepted
    local_cloud.advance_time(DELETE_SECONDS)
    assert list(conn.compute.servers()) == []
    assert conn.compute.get_limits().absolute.instances_used == 0
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server(server.id)


def test_list_filters_name_status_and_changes_since(local_cloud):
    conn = local_cloud.connect()
    pid = local_cloud.project_id
    a = local_cloud.compute.add_server("pilot-a", pid, metadata={"role": "pilot"})
    local_cloud.compute.add_server("other-b", pid)
    c = local_cloud.compute.add_server("pilot-c", pid, status="SHUTOFF")
    assert sorted(s.name for s in conn.compute.servers(name="^pilot-")) == ["pilot-a", "pilot-c"]
    assert [s.id for s in conn.compute.servers(status="SHUTOFF")] == [c.id]
    assert next(s for s in conn.compute.servers() if s.id == a.id).metadata == {"role": "pilot"}

    local_cloud.advance_time(60)
    since = local_cloud.clock.utcnow().isoformat()
    local_cloud.compute.set_state(a.id, "ERROR", fault="boom")
    local_cloud.compute.delete_server(pid, c.id)
    changed = {s.id: (s.status, s.task_state) for s in conn.compute.servers(changes_since=since)}
    assert changed == {a.id: ("ERROR", None), c.id: ("SHUTOFF", "deleting")}
    local_cloud.compute.finish_deletions()
    changed = {s.id: s.status for s in conn.compute.servers(changes_since=since)}
    assert changed == {a.id: "ERROR", c.id: "DELETED"}
    # a deleted server's record is final: a later changes-since no longer shows it (its
    # updated time once moved at every listing, so every deletion was reported forever)
    local_cloud.advance_time(60)
    later = local_cloud.clock.utcnow().isoformat()
    assert [s.id for s in conn.compute.servers(changes_since=later)] == []


def test_the_status_filter_repeats_selects_by_vm_state_and_refuses_deleted_alone(local_cloud):
    """As Nova: ``status`` may be given several times, a status with a task (REBOOT) selects its
    vm_state, an unknown one is refused from 2.38, deleted servers alone only an admin may list."""
    conn = local_cloud.connect()
    pid = local_cloud.project_id
    since = local_cloud.clock.utcnow().isoformat()
    active = local_cloud.compute.add_server("s-active", pid)
    stopped = local_cloud.compute.add_server("s-stopped", pid, status="SHUTOFF")
    local_cloud.compute.add_server("s-error", pid, status="ERROR")
    gone = local_cloud.compute.add_server("s-gone", pid)
    local_cloud.compute.delete_server(pid, gone.id)
    local_cloud.compute.finish_deletions()

    def ids(query, microversion="2.1", expect=200):
        reply = conn.compute.get(f"/servers/detail?{query}", microversion=microversion)
        assert reply.status_code == expect, reply.text
        return {s["id"] for s in reply.json()["servers"]} if expect == 200 else reply.json()

    assert ids("status=ACTIVE&status=SHUTOFF") == {active.id, stopped.id}
    assert ids("status=REBOOT") == {active.id}  # vm_state active, whatever its task
    assert ids(f"changes-since={since}&status=ACTIVE&status=SOFT_DELETED") == {active.id}
    assert ids("status=BOGUS") == set()
    assert ids("status=BOGUS", microversion="2.38", expect=400)["badRequest"]["message"] == "Invalid status value"
    refused = ids(f"changes-since={since}&status=DELETED", expect=403)
    assert refused["forbidden"]["message"] == "Only administrators may list deleted instances"
    brief = conn.compute.get(f"/servers?changes-since={since}", microversion="2.1").json()["servers"]
    assert {s["id"] for s in brief} >= {active.id, gone.id}
    assert set(brief[0]) == {"id", "name", "links"}


def test_tags_filters(local_cloud):
    conn = local_cloud.connect()
    image = conn.image.find_image("EL9-x86_64")
    for name, tags in [("t1", ["jdirac", "ce-1"]), ("t2", ["jdirac"]), ("t3", [])]:
        conn.compute.post("/servers", json={"server": {"name": name, "imageRef": image.id,
                                                       "flavorRef": "1", "tags": tags,
                                                       "networks": "auto"}},
                          microversion="2.52")
    assert sorted(s.name for s in conn.compute.servers(tags="jdirac")) == ["t1", "t2"]
    assert [s.name for s in conn.compute.servers(tags="jdirac,ce-1")] == ["t1"]
    assert sorted(s.name for s in conn.compute.servers(any_tags="ce-1,other")) == ["t1"]


def test_pagination_with_limit_ends_on_empty_page(local_cloud):
    conn = local_cloud.connect()
    for i in range(5):
        local_cloud.compute.add_server(f"s{i}", local_cloud.project_id)
    names = [s.name for s in conn.compute.servers(limit=2)]
    assert names == ["s4", "s3", "s2", "s1", "s0"]  # newest first, like Nova
    # pages of 2, 2, 1 and the empty page openstacksdk asks for after a page without a next link
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 4


def test_limits_and_quota_errors(local_cloud):
    conn = local_cloud.connect()
    local_cloud.compute.set_quota(instances=2, cores=-1, ram=-1)
    _boot(conn, "one")
    _boot(conn, "two")
    limits = conn.compute.get_limits().absolute
    assert (limits.instances, limits.instances_used, limits.total_cores) == (2, 2, -1)
    assert limits.total_ram_used == 4096
    with pytest.raises(openstack.exceptions.ForbiddenException) as err:
        _boot(conn, "three")
    assert "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances" in str(err.value)
    assert len(local_cloud.compute.servers) == 2


def test_quota_error_body_is_novas(local_cloud):
    conn = local_cloud.connect()
    local_cloud.compute.set_quota(cores=2)
    image = conn.image.find_image("EL9-x86_64")
    response = conn.compute.post("/servers", json={"server": {
        "name": "big", "imageRef": image.id, "flavorRef": conn.compute.find_flavor("m1.large").id}})
    assert response.status_code == 403
    assert response.json() == {"forbidden": {"code": 403, "message":
                               "Quota exceeded for cores: Requested 4, but already used 0 of 2 cores"}}


def test_images_flavors_networks_keypairs(local_cloud):
    conn = local_cloud.connect()
    assert [i.name for i in conn.image.images(name="EL9-x86_64")] == ["EL9-x86_64"]
    assert list(conn.image.images(name="nope")) == []
    flavors = {f.name: (f.vcpus, f.ram) for f in conn.compute.flavors()}
    assert flavors["m1.small"] == (1, 2048) and flavors["m1.medium"] == (2, 4096)
    assert flavors["m1.large"] == (4, 8192)
    assert [n.name for n in conn.network.networks()] == ["private"]
    conn.compute.create_keypair(name="k1")
    assert [k.name for k in conn.compute.keypairs()] == ["k1"]
    server = _boot(conn, "with-key", key_name="k1")
    assert conn.compute.get_server(server.id).key_name == "k1"
    conn.compute.delete_keypair("k1")
    assert list(conn.compute.keypairs()) == []


def test_reauthenticates_after_token_expiry(local_cloud):
    conn = local_cloud.connect()
    list(conn.compute.servers())
    logins = local_cloud.counters.get("identity", "POST", "/v3/auth/tokens")
    local_cloud.advance_time(3601)  # every token issued so far is now expired on the cloud
    assert list(conn.compute.servers()) == []
    assert local_cloud.counters.get("identity", "POST", "/v3/auth/tokens") == logins + 1


@pytest.mark.parametrize("auth_type", ["v3applicationcredential", "v3oidcaccesstoken"])
def test_reauthenticates_after_revocation_with_other_methods(local_cloud, auth_type):
    conn = local_cloud.connect(auth_type)
    list(conn.compute.servers())
    assert local_cloud.identity.expire_all_tokens() >= 1
    assert list(conn.compute.flavors())
    assert len(local_cloud.identity.tokens) >= 1


def test_microversion_negotiation_and_bad_user_data(local_cloud):
    conn = local_cloud.connect()
    base = f"{local_cloud.base_url}/compute/v2.1"
    token = conn.session.get_token()
    r = requests.get(f"{base}/flavors", headers={"X-Auth-Token": token,
                                                 "OpenStack-API-Version": "compute 2.60"}, timeout=5)
    assert r.headers["OpenStack-API-Version"] == "compute 2.60"
    r = requests.get(f"{base}/flavors", headers={"X-Auth-Token": token,
                                                 "OpenStack-API-Version": "compute 3.0"}, timeout=5)
    assert r.status_code == 406
    r = requests.get(f"{base}/servers", timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == 401
    image = conn.image.find_image("EL9-x86_64")
    for user_data, words in [("!!notbase64", "base64"), ("A" * 65536, "too long")]:
        response = conn.compute.post("/servers", json={"server": {
            "name": "x", "imageRef": image.id, "flavorRef": "1", "user_data": user_data}})
        assert response.status_code == 400
        assert words in response.json()["badRequest"]["message"]


def test_concurrent_creates_respect_the_quota(local_cloud):
    from concurrent.futures import ThreadPoolExecutor

    local_cloud.compute.set_quota(instances=6)
    conns = [local_cloud.connect() for _ in range(4)]
    image_id = conns[0].image.find_image("EL9-x86_64").id

    def create(i):
        conn = conns[i % len(conns)]
        try:
            conn.compute.create_server(name=f"burst-{i}", image_id=image_id, flavor_id="1", networks="auto")
            return "created"
        except openstack.exceptions.ForbiddenException:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(16)))
    assert outcomes.count("created") == 6 and outcomes.count("refused") == 10
    assert len(local_cloud.compute.servers) == 6


def test_extra_oidc_access_tokens_are_accepted():
    from JenniferLocalCloud import LocalCloud

    with LocalCloud(oidc_access_tokens=("egi-token-1",)) as cloud:
        entry = cloud.clouds_yaml_entry("v3oidcaccesstoken")
        entry["auth"]["access_token"] = "egi-token-1"
        conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
        assert [f.name for f in conn.compute.flavors()][0] == "m1.tiny"
