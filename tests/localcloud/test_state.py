"""LocalCloud's state parts driven directly (no HTTP): the rules behind the wire."""

import gzip
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from JenniferLocalCloud import LocalCloud
from JenniferLocalCloud.boot.userdata import parse
from JenniferLocalCloud.errors import BadRequest, Forbidden, Unauthorized


@pytest.fixture
def cloud():
    return LocalCloud(seed=3)  # not started: state only


def _spec(cloud, **extra):
    return {"name": "vm", "imageRef": next(iter(cloud.image.images)), "flavorRef": "2", **extra}


def test_ids_are_reproducible_by_seed():
    first, second = LocalCloud(seed=5), LocalCloud(seed=5)
    a = first.compute.add_server("x", first.project_id)
    b = second.compute.add_server("x", second.project_id)
    assert a.id == b.id and first.project_id == second.project_id


def test_pagination_markers(cloud):
    pid = cloud.project_id
    servers = [cloud.compute.add_server(f"s{i}", pid) for i in range(5)]
    page = cloud.compute.list_servers(pid, limit=2)
    assert [s.name for s in page.servers] == ["s4", "s3"] and page.limit == 2
    page = cloud.compute.list_servers(pid, limit=2, marker=page.servers[-1].id)
    assert [s.name for s in page.servers] == ["s2", "s1"]
    assert cloud.compute.list_servers(pid, limit=2, marker=servers[0].id).servers == []
    with pytest.raises(BadRequest, match=r"marker \[nope\] not found"):
        cloud.compute.list_servers(pid, marker="nope")
    # a marker that no longer matches the filter still continues after itself
    cloud.compute.set_state(servers[3].id, "ERROR", fault="x")
    after = cloud.compute.list_servers(pid, status="ACTIVE", marker=servers[3].id)
    assert [s.name for s in after.servers] == ["s2", "s1", "s0"]
    with pytest.raises(BadRequest, match="regular expression"):
        cloud.compute.list_servers(pid, name="(")


def test_quota_messages_name_every_exceeded_resource(cloud):
    pid, uid = cloud.project_id, cloud.credentials.user_id
    cloud.compute.set_quota(instances=-1, cores=4, ram=4096)
    cloud.compute.create_server(pid, uid, _spec(cloud, flavorRef="3"))  # m1.medium 2/4096
    with pytest.raises(Forbidden) as err:
        cloud.compute.create_server(pid, uid, _spec(cloud, flavorRef="3"))
    assert err.value.message == ("Quota exceeded for ram: Requested 4096, but already used 4096 of 4096 ram")
    cloud.compute.set_quota(pid, cores=2)
    with pytest.raises(Forbidden) as err:
        cloud.compute.create_server(pid, uid, _spec(cloud, flavorRef="3"))
    assert err.value.message == ("Quota exceeded for cores, ram: Requested 2, 4096, "
                                 "but already used 2, 4096 of 2, 4096 cores, ram")
    assert cloud.compute.usage(pid) == {"instances": 1, "cores": 2, "ram": 4096}


def test_create_validation_names_the_field(cloud):
    pid, uid = cloud.project_id, cloud.credentials.user_id
    cases = [
        ({"name": ""}, "name"),
        ({"imageRef": "missing"}, "Image missing could not be found"),
        ({"flavorRef": "99"}, "Flavor 99 could not be found"),
        ({"metadata": {"k": 1}}, "Metadata values must be strings"),
        ({"user_data": "A" * 65536}, "too long"),
        ({"user_data": "***"}, "not a base64"),
        ({"networks": [{"uuid": "nope"}]}, "Network nope could not be found"),
        ({"key_name": "nokey"}, "Invalid key_name"),
    ]
    for extra, words in cases:
        with pytest.raises(BadRequest, match=words):
            cloud.compute.create_server(pid, uid, _spec(cloud, **extra))
    ok = cloud.compute.create_server(pid, uid, _spec(cloud, user_data="A" * 65532))
    assert ok.status == "ACTIVE"
    with pytest.raises(ValueError, match="unknown server status"):
        cloud.compute.set_state(ok.id, "EXPLODED")


def test_token_expiry_and_rescoping_on_the_clock(cloud):
    creds = cloud.credentials
    token = cloud.identity.authenticate({"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": creds.username, "domain": {"name": "Default"}, "password": creds.password}}},
        "scope": {"project": {"name": creds.project_name, "domain": {"id": "default"}}}}})
    assert token.project_id == creds.project_id
    rescoped = cloud.identity.authenticate({"auth": {"identity": {"methods": ["token"],
                                                                  "token": {"id": token.id}}}})
    assert rescoped.project_id == creds.project_id and rescoped.methods == ["token", "password"]
    cloud.advance_time(3600)
    with pytest.raises(Unauthorized):
        cloud.identity.validate(token.id)
    with pytest.raises(Unauthorized):
        cloud.identity.authenticate({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": creds.application_credential_id, "secret": "wrong"}}}})
    with pytest.raises(Unauthorized):
        cloud.identity.federated_auth("egi.eu", "openid", "Bearer not-a-token")
    shown = repr(creds)
    assert creds.password not in shown and creds.oidc_access_token not in shown
    assert creds.application_credential_secret not in shown


def test_user_data_parsing_like_cloud_init():
    plain = parse(b"#cloud-config\nruncmd: [echo hi]\n")
    assert plain.config == {"runcmd": ["echo hi"]} and plain.scripts == []
    script = parse(gzip.compress(b"#!/bin/sh\necho hi\n"))
    assert [s.content for s in script.scripts] == [b"#!/bin/sh\necho hi\n"]

    message = MIMEMultipart()
    message.attach(MIMEText("#cloud-config\nwrite_files: [{path: /a, content: x}]\nruncmd: [one]\n",
                            "cloud-config"))
    message.attach(MIMEText("#cloud-config\nruncmd: [two]\n", "cloud-config"))
    message.attach(MIMEText("#!/bin/sh\necho part\n", "x-shellscript"))
    message.attach(MIMEText("{{ jinja }}", "jinja2"))
    parsed = parse(message.as_bytes())
    assert parsed.config["runcmd"] == ["two"] and parsed.config["write_files"][0]["path"] == "/a"
    assert len(parsed.scripts) == 1 and parsed.skipped == ["part-004 (text/jinja2)"]
    with pytest.raises(ValueError, match="must be a mapping"):
        parse(b"#cloud-config\n- a list\n")
