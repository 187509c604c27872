"""OpenStackBackend against LocalCloud over real HTTP with openstacksdk and keystoneauth."""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import uuid

import pytest
from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.errors import (
    CloudAuthError,
    CloudError,
    CloudUnreachable,
    ConfigurationError,
    FailureKind,
    NotFound,
    QuotaExceeded,
    RequestRejected,
)
from JenniferDIRAC.Resources.Cloud.resolving import StaleReference
from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.OpenStackBackend import NOVA_MAX_USER_DATA_BYTES, OpenStackBackend
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name

LIST = ("compute", "GET", "/v2.1/servers/detail")
TOKENS = ("identity", "POST", "/v3/auth/tokens")


def password_backend(cloud, **kwargs) -> OpenStackBackend:
    c = cloud.credentials
    auth = v3.Password(auth_url=c.auth_url, username=c.username, password=c.password,
                       user_domain_name=c.domain_name, project_name=c.project_name,
                       project_domain_name=c.domain_name)
    return OpenStackBackend(auth=auth, region_name=c.region_name, secrets=[c.password], **kwargs)


@pytest.fixture
def backend(local_cloud):
    backend = password_backend(local_cloud)
    yield backend
    backend.close()


@pytest.fixture
def owner():
    return OwnerTags(installation="install-a", ce=f"ce-{uuid.uuid4().hex[:8]}.example", vo="vo1",
                     stamp=make_stamp())


def make_spec(backend, owner: OwnerTags, user_data: bytes = b"#cloud-config\n", **extra) -> VMSpec:
    return VMSpec(
        name=make_vm_name(),
        image_id=backend.resolve_image("name:EL9-x86_64"),
        flavor_id=backend.resolve_flavor("name:m1.small").id,
        user_data=user_data,
        metadata=owner.to_metadata(),
        **extra,
    )


def records_of(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)


# --- references --------------------------------------------------------------------------------
def test_references_by_id_and_name_are_resolved_once(local_cloud, backend):
    image_id = backend.resolve_image("name:EL9-x86_64")
    flavor = backend.resolve_flavor("name:m1.medium")
    (network_id,) = backend.resolve_networks(["name:private"])
    assert (flavor.name, flavor.vcpus, flavor.ram_mb) == ("m1.medium", 2, 4096)
    assert backend.resolve_image(image_id) == image_id
    assert backend.resolve_flavor(flavor.id) == flavor
    assert backend.resolve_networks([network_id]) == [network_id]
    local_cloud.counters.reset()
    for _ in range(3):
        backend.resolve_image("name:EL9-x86_64")
        backend.resolve_flavor("name:m1.medium")
        backend.resolve_networks(["name:private", network_id])
    assert local_cloud.counters.total() == 0


def test_unknown_and_ambiguous_references(local_cloud, backend):
    with pytest.raises(NotFound, match="no image matches 'name:nope'"):
        backend.resolve_image("name:nope")
    with pytest.raises(NotFound, match="flavor"):
        backend.resolve_flavor("no-such-flavor-id")
    with pytest.raises(NotFound, match="network"):
        backend.resolve_networks(["name:nope"])
    local_cloud.image.add_image("twin")
    local_cloud.image.add_image("twin")
    with pytest.raises(CloudError, match="2 images match 'name:twin'; use the image id"):
        backend.resolve_image("name:twin")


# --- VMs ---------------------------------------------------------------------------------------
def test_create_list_find_console_delete(local_cloud, backend, owner):
    local_cloud.compute.add_keypair(local_cloud.credentials.user_id, "mykey")
    (network_id,) = backend.resolve_networks(["name:private"])
    spec = make_spec(backend, owner, b"#cloud-config\nruncmd: [[echo, hi]]\n", network_ids=[network_id],
                     key_name="mykey", security_groups=["default"], availability_zone="nova",
                     config_drive=True)
    vm = backend.create_vm(spec)
    assert (vm.name, vm.state, vm.stamp) == (spec.name, VMState.BUILD, owner.stamp)

    server = local_cloud.compute.servers[vm.id]
    assert base64.b64decode(server.user_data) == spec.user_data
    assert server.metadata == owner.to_metadata()
    assert (server.key_name, server.availability_zone, server.config_drive) == ("mykey", "nova", True)
    assert list(server.addresses) == ["private"]

    listed = backend.list_vms(owner)
    assert [v.id for v in listed] == [vm.id]
    assert listed[0].owner == owner and listed[0].flavor_id == spec.flavor_id
    assert listed[0].image_id == spec.image_id
    assert listed[0].created is not None and listed[0].created.utcoffset().total_seconds() == 0

    assert backend.find_vm_by_name(spec.name, owner).id == vm.id
    assert backend.find_vm_by_name(make_vm_name(), owner) is None
    assert vm.name in backend.console_log(vm.id)

    assert backend.delete_vms([vm.id, str(uuid.uuid4())]) == {}  # already gone = success
    # Nova lists a deleted server for a moment with task_state deleting
    assert [v.state for v in backend.list_vms(owner)] in ([], [VMState.DELETING])
    assert backend.delete_vms([vm.id]) == {}  # deleting it again is accepted
    local_cloud.advance_time(3600)
    assert backend.list_vms(owner) == []
    with pytest.raises(NotFound):
        backend.console_log(vm.id)


def test_ownership_by_metadata_never_by_name(local_cloud, backend, owner):
    project = local_cloud.project_id
    mine = local_cloud.compute.add_server(make_vm_name(), project, metadata=owner.to_metadata())
    local_cloud.compute.add_server(make_vm_name(), project)  # our prefix, no owner tags
    local_cloud.compute.add_server(
        make_vm_name(), project, metadata=OwnerTags("install-b", owner.ce).to_metadata()
    )
    local_cloud.compute.add_server(
        make_vm_name(), project, metadata=OwnerTags(owner.installation, "other-ce").to_metadata()
    )
    assert [v.id for v in backend.list_vms(owner)] == [mine.id]
    others = [s for s in local_cloud.compute.servers.values() if s.id != mine.id]
    assert all(backend.find_vm_by_name(s.name, owner) is None for s in others)


def test_states_error_fault_and_stuck_build(local_cloud, backend, owner):
    local_cloud.faults.error_next_vms(1, message="No valid host was found.")
    local_cloud.faults.stick_next_vms_in_build(1)
    failed = backend.create_vm(make_spec(backend, owner))
    stuck = backend.create_vm(make_spec(backend, owner))
    local_cloud.advance_time(3600)
    by_id = {v.id: v for v in backend.list_vms(owner)}
    assert by_id[failed.id].state is VMState.ERROR
    assert by_id[failed.id].fault == "No valid host was found."
    assert by_id[stuck.id].state is VMState.BUILD
    local_cloud.compute.set_state(stuck.id, "SHUTOFF")
    assert {v.id: v.state for v in backend.list_vms(owner)}[stuck.id] is VMState.SHUTOFF


def test_listing_many_vms_costs_one_request(local_cloud, backend, owner):
    project = local_cloud.project_id
    for _ in range(300):
        local_cloud.compute.add_server(make_vm_name(), project, metadata=owner.to_metadata())
    for _ in range(50):  # someone else's VMs in the same project
        local_cloud.compute.add_server(f"other-{uuid.uuid4().hex}", project)
    backend.list_vms(owner)  # discovery and authentication happen once per backend
    local_cloud.counters.reset()
    vms = backend.list_vms(owner)
    assert len(vms) == 300
    assert local_cloud.counters.snapshot() == {LIST: 1}


def test_listing_pages_beyond_novas_max_limit(local_cloud, backend, owner):
    project = local_cloud.project_id
    for _ in range(1001):
        local_cloud.compute.add_server(make_vm_name(), project, metadata=owner.to_metadata())
    backend.list_vms(owner)
    local_cloud.counters.reset()
    assert len(backend.list_vms(owner)) == 1001
    assert local_cloud.counters.snapshot() == {LIST: 2}  # pages of 1000


# --- quota -------------------------------------------------------------------------------------
def test_quota_limits_and_exhaustion(local_cloud, backend, owner):
    local_cloud.compute.set_quota(instances=2, cores=-1, ram=-1)
    flavor = backend.resolve_flavor("name:m1.small")
    quota = backend.quota()
    assert (quota.max_instances, quota.used_instances, quota.max_cores) == (2, 0, -1)
    assert quota.headroom(flavor) == 2
    backend.create_vm(make_spec(backend, owner))
    backend.create_vm(make_spec(backend, owner))
    assert backend.quota().headroom(flavor) == 0
    spec = make_spec(backend, owner)
    with pytest.raises(QuotaExceeded, match="Quota exceeded for instances"):
        backend.create_vm(spec)
    assert backend.find_vm_by_name(spec.name, owner) is None


def test_unlimited_quota(local_cloud, backend):
    local_cloud.compute.set_quota(instances=-1, cores=-1, ram=-1)
    assert backend.quota().headroom(backend.resolve_flavor("name:m1.xlarge")) == math.inf


def test_quota_refusal_and_recheck(local_cloud, backend, owner):
    local_cloud.faults.refuse_next_creates_for_quota(1)
    with pytest.raises(QuotaExceeded):
        backend.create_vm(make_spec(backend, owner))
    local_cloud.faults.quota_recheck_next_vms(1)
    vm = backend.create_vm(make_spec(backend, owner))  # accepted, then failed by the recheck
    local_cloud.advance_time(60)
    (listed,) = backend.list_vms(owner)
    assert listed.id == vm.id and listed.state is VMState.ERROR
    assert "Quota exceeded" in listed.fault


# --- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_cloud_unreachable(local_cloud, backend, owner, status):
    backend.list_vms(owner)
    local_cloud.faults.http_error(status, service="compute", method="GET", path="*/servers/detail")
    with pytest.raises(CloudUnreachable, match=f"listing servers: HTTP {status}"):
        backend.list_vms(owner)
    assert backend.list_vms(owner) == []  # the next cycle works again


def test_create_5xx_is_cloud_unreachable(local_cloud, backend, owner):
    local_cloud.faults.http_error(500, service="compute", method="POST", path="*/servers")
    spec = make_spec(backend, owner)
    with pytest.raises(CloudUnreachable):
        backend.create_vm(spec)
    assert backend.find_vm_by_name(spec.name, owner) is None


def test_create_timeout_is_not_retried(local_cloud, owner):
    backend = password_backend(local_cloud, timeout=1.0)
    try:
        spec = make_spec(backend, owner)
        local_cloud.faults.timeout(5.0, service="compute", method="POST", path="*/servers")
        with pytest.raises(CloudUnreachable, match=f"creating server {spec.name}"):
            backend.create_vm(spec)
        # one POST only: a retry could duplicate the VM; the caller looks it up by name first
        assert local_cloud.counters.get("compute", "POST", "/v2.1/servers") == 1
        assert backend.find_vm_by_name(spec.name, owner) is None
    finally:
        backend.close()


# Nova's (and Neutron's, through Nova) real answers to POST /servers, and what they mean
CREATE_REFUSALS = [
    (403, "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
     QuotaExceeded, FailureKind.QUOTA),
    (403, "Quota exceeded for cores: Requested 2, but already used 20 of 20 cores", QuotaExceeded, FailureKind.QUOTA),
    (403, "Quota exceeded for ram: Requested 4096, but already used 51200 of 51200 ram",
     QuotaExceeded, FailureKind.QUOTA),
    (403, "Maximum number of ports exceeded", QuotaExceeded, FailureKind.QUOTA),
    (409, "Quota exceeded for resources: ['port'].", QuotaExceeded, FailureKind.QUOTA),  # Neutron OverQuota
    (403, "Maximum number of metadata items exceeds 128", RequestRejected, FailureKind.CONFIGURATION),
    (403, "Policy doesn't allow os_compute_api:servers:create to be performed.",
     RequestRejected, FailureKind.CONFIGURATION),
    (400, "Invalid key_name provided.", RequestRejected, FailureKind.CONFIGURATION),
    (400, "Can not find requested image", StaleReference, FailureKind.CONFIGURATION),
    (400, "Invalid flavorRef provided.", StaleReference, FailureKind.CONFIGURATION),
    (500, "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API "
          "log if possible.", CloudUnreachable, FailureKind.UNREACHABLE),
    (503, "Service Unavailable", CloudUnreachable, FailureKind.UNREACHABLE),
]


@pytest.mark.parametrize("status, message, error, kind", CREATE_REFUSALS)
def test_create_refusals_carry_the_kind_of_novas_real_answer(local_cloud, backend, owner, status, message, error, kind):
    local_cloud.faults.http_error(status, message=message, service="compute", method="POST", path="*/servers")
    with pytest.raises(CloudError, match=f"HTTP {status}") as info:
        backend.create_vm(make_spec(backend, owner))
    assert type(info.value) is error and info.value.kind is kind
    assert message[:20] in str(info.value)


def test_stale_references_name_what_is_gone(local_cloud, backend, owner):
    spec = make_spec(backend, owner)
    for what, field in (("image", "image_id"), ("flavor", "flavor_id")):
        bad = dataclasses.replace(spec, name=make_vm_name(), **{field: str(uuid.uuid4())})
        with pytest.raises(StaleReference) as info:
            backend.create_vm(bad)  # LocalCloud's own 400 for an id it does not know
        assert info.value.what == what
    assert local_cloud.compute.servers == {}


@pytest.mark.parametrize("code, message, kind", [
    (500, "No valid host was found. There are not enough hosts available.", FailureKind.CAPACITY),
    (413, "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances", FailureKind.QUOTA),
    (500, "Build of instance 8e7c aborted: Failed to allocate the network(s), not rescheduling.",
     FailureKind.CLOUD_FAULT),
])
def test_error_vms_carry_the_kind_of_their_fault(local_cloud, backend, owner, code, message, kind):
    local_cloud.faults.error_next_vms(1, message=message, code=code)
    vm = backend.create_vm(make_spec(backend, owner))
    local_cloud.advance_time(60)
    (listed,) = backend.list_vms(owner)
    assert listed.id == vm.id and listed.state is VMState.ERROR
    assert listed.fault_kind is kind and listed.fault.startswith(message[:20])


def test_image_given_by_id_needs_no_image_service(local_cloud, backend, owner):
    image_id = backend.resolve_image("name:EL9-x86_64")
    local_cloud.faults.http_error(503, service="image", times=None)
    local_cloud.counters.reset()
    assert backend.resolve_image(image_id) == image_id
    assert backend.resolve_image(str(uuid.uuid4())) != ""  # unknown ids are refused by Nova at create
    assert local_cloud.counters.total("image") == 0


def test_resolved_references_expire_after_their_ttl(local_cloud, owner):
    backend = password_backend(local_cloud, reference_ttl=0.0)
    try:
        first = backend.resolve_image("name:EL9-x86_64")
        old = local_cloud.image.images.pop(first)
        replacement = local_cloud.image.add_image(old.name, min_disk=old.min_disk, properties=dict(old.properties))
        assert backend.resolve_image("name:EL9-x86_64") == replacement.id
    finally:
        backend.close()
    cached = password_backend(local_cloud)  # the default TTL (an hour) keeps it
    try:
        cached.resolve_image("name:EL9-x86_64")
        local_cloud.counters.reset()
        cached.resolve_image("name:EL9-x86_64")
        assert local_cloud.counters.total("image") == 0
        cached.forget_reference("image", "name:EL9-x86_64")
        cached.resolve_image("name:EL9-x86_64")
        assert local_cloud.counters.total("image") == 1
    finally:
        cached.close()


def test_garbled_listing_is_a_cloud_error_not_a_decode_error(local_cloud, backend, owner):
    local_cloud.faults.garble(service="compute", method="GET", path="*/servers/detail")
    with pytest.raises(CloudError, match="invalid JSON"):
        backend.list_vms(owner)
    assert backend.list_vms(owner) == []


def test_timeout_and_dropped_connection_are_cloud_unreachable(local_cloud, owner):
    backend = password_backend(local_cloud, timeout=1.0)
    try:
        backend.list_vms(owner)
        local_cloud.faults.timeout(5.0, service="compute", path="*/servers/detail")
        with pytest.raises(CloudUnreachable, match="listing servers"):
            backend.list_vms(owner)
        local_cloud.faults.drop_connection(service="compute", path="*/servers/detail")
        with pytest.raises(CloudUnreachable):
            backend.list_vms(owner)
    finally:
        backend.close()


def test_unreachable_cloud(closed_port, owner):
    auth = v3.Password(auth_url=f"http://127.0.0.1:{closed_port}/identity/v3", username="u",
                       password="pw-secret-1234", user_domain_name="Default", project_name="p",
                       project_domain_name="Default")
    backend = OpenStackBackend(auth=auth, secrets=["pw-secret-1234"], timeout=2)
    with pytest.raises(CloudUnreachable) as info:
        backend.list_vms(owner)
    assert "pw-secret-1234" not in str(info.value)


def test_user_data_limit(backend, owner):
    assert backend.max_user_data_bytes == NOVA_MAX_USER_DATA_BYTES == 49149
    backend.create_vm(make_spec(backend, owner, b"#" * NOVA_MAX_USER_DATA_BYTES))
    with pytest.raises(CloudError, match="exceeds this cloud's limit of 49149 bytes"):
        backend.create_vm(make_spec(backend, owner, b"#" * (NOVA_MAX_USER_DATA_BYTES + 1)))


# --- authentication ----------------------------------------------------------------------------
def test_token_expiry_mid_use_reauthenticates(local_cloud, backend, owner):
    backend.list_vms(owner)
    local_cloud.counters.reset()
    local_cloud.identity.expire_all_tokens()
    assert backend.list_vms(owner) == []
    assert local_cloud.counters.get(*TOKENS) == 1
    local_cloud.faults.expire_token(service="compute")
    assert backend.list_vms(owner) == []
    assert local_cloud.counters.get(*TOKENS) == 2
    # and a token is reused while valid
    backend.list_vms(owner)
    backend.quota()
    assert local_cloud.counters.get(*TOKENS) == 2


def test_application_credential(local_cloud, owner):
    c = local_cloud.credentials
    auth = v3.ApplicationCredential(auth_url=c.auth_url, application_credential_id=c.application_credential_id,
                                    application_credential_secret=c.application_credential_secret)
    backend = OpenStackBackend(auth=auth, secrets=[c.application_credential_secret])
    vm = backend.create_vm(make_spec(backend, owner))
    assert [v.id for v in backend.list_vms(owner)] == [vm.id]


def test_static_token_works_until_it_expires(local_cloud, backend, owner):
    c = local_cloud.credentials
    token = backend.session.get_token()
    static = OpenStackBackend(auth=v3.Token(auth_url=c.auth_url, token=token, project_name=c.project_name,
                                            project_domain_name=c.domain_name), secrets=[token])
    assert static.list_vms(owner) == []
    local_cloud.identity.expire_all_tokens()
    with pytest.raises(CloudAuthError) as info:
        static.list_vms(owner)
    assert token not in str(info.value)


def test_revoked_token_keystone_404_is_an_auth_error_that_reauthenticates(local_cloud, backend, owner):
    backend.list_vms(owner)
    local_cloud.identity.expire_all_tokens()
    # real Keystone answers 404 when it cannot validate a token it no longer has
    local_cloud.faults.http_error(404, message="Could not find token: 5e0a0d1b2c.", service="identity",
                                  method="POST", path="/v3/auth/tokens")
    with pytest.raises(CloudAuthError, match="revoked or has expired") as info:
        backend.list_vms(owner)
    assert not isinstance(info.value, NotFound) and info.value.kind is FailureKind.AUTH
    local_cloud.counters.reset()
    assert backend.list_vms(owner) == []  # the next call authenticates again
    assert local_cloud.counters.get(*TOKENS) == 1


@pytest.mark.parametrize("option", ["AuthURL", "Driver_ex_force_auth_url"])
def test_keystone_url_with_a_wrong_path_names_the_url_option(local_cloud, owner, option):
    c = local_cloud.credentials
    auth = v3.Password(auth_url=local_cloud.base_url + "/keystone/v3", username=c.username, password=c.password,
                       user_domain_name=c.domain_name, project_name=c.project_name,
                       project_domain_name=c.domain_name)
    backend = OpenStackBackend(auth=auth, secrets=[c.password], auth_url_option=option)
    try:
        with pytest.raises(ConfigurationError) as info:
            backend.list_vms(owner)
        assert info.value.option == option and "/keystone/v3/auth/tokens" in str(info.value)
        assert c.password not in str(info.value)
    finally:
        backend.close()


def test_oidc_access_token(local_cloud, owner):
    c = local_cloud.credentials
    auth = v3.OidcAccessToken(auth_url=c.auth_url, identity_provider=c.oidc_identity_provider,
                              protocol=c.oidc_protocol, access_token=c.oidc_access_token,
                              project_name=c.project_name, project_domain_name=c.domain_name)
    backend = OpenStackBackend(auth=auth, secrets=[c.oidc_access_token])
    vm = backend.create_vm(make_spec(backend, owner))
    assert [v.id for v in backend.list_vms(owner)] == [vm.id]


def test_wrong_password_is_auth_error_without_secret(local_cloud, owner, caplog):
    caplog.set_level(logging.DEBUG)
    c = local_cloud.credentials
    wrong = "wrong-" + c.password
    auth = v3.Password(auth_url=c.auth_url, username=c.username, password=wrong,
                       user_domain_name=c.domain_name, project_name=c.project_name,
                       project_domain_name=c.domain_name)
    backend = OpenStackBackend(auth=auth, secrets=[wrong])
    with pytest.raises(CloudAuthError) as info:
        backend.list_vms(owner)
    assert wrong not in str(info.value) and c.password not in str(info.value)
    assert c.password not in records_of(caplog)


def test_secrets_absent_from_debug_logs(local_cloud, owner, caplog):
    caplog.set_level(logging.DEBUG)
    c = local_cloud.credentials
    backend = password_backend(local_cloud)
    user_data = b"#cloud-config\n# endpoint token: vm-token-0123456789abcdef\n"
    vm = backend.create_vm(make_spec(backend, owner, user_data))
    backend.list_vms(owner)
    local_cloud.identity.expire_all_tokens()
    backend.quota()
    token = backend.session.get_token()
    text = records_of(caplog)
    assert "servers/detail" in text and '"user_data": "***"' in text  # the logs were captured
    assert c.password not in text and token not in text
    assert base64.b64encode(user_data).decode() not in text and "vm-token" not in text
    assert base64.b64decode(local_cloud.compute.servers[vm.id].user_data) == user_data


def test_concurrent_creates_share_one_connection_and_token(local_cloud, backend, owner):
    from concurrent.futures import ThreadPoolExecutor

    specs = [make_spec(backend, owner) for _ in range(8)]
    local_cloud.counters.reset()
    with ThreadPoolExecutor(max_workers=4) as pool:
        vms = list(pool.map(backend.create_vm, specs))
    assert sorted(v.name for v in backend.list_vms(owner)) == sorted(s.name for s in specs)
    assert len({v.id for v in vms}) == 8
    # the token and the version discovery of the first calls are reused by every thread
    assert local_cloud.counters.snapshot() == {("compute", "POST", "/v2.1/servers"): 8, LIST: 1}


def test_deletes_are_sent_concurrently_and_each_outcome_is_kept(local_cloud, backend, owner):
    import threading

    from JenniferDIRAC.Resources.Cloud.backend import DELETE_THREADS

    servers = [local_cloud.compute.add_server(make_vm_name(), local_cloud.project_id,
                                              metadata=owner.to_metadata()) for _ in range(DELETE_THREADS + 1)]
    # the cloud holds each DELETE until DELETE_THREADS of them are in flight at once: deletes
    # sent one after another break the barrier (its deadline) and come back as errors
    barrier = threading.Barrier(DELETE_THREADS, timeout=20)
    real_delete = local_cloud.compute.delete_server

    held = {s.id for s in servers[1:]}  # the first is not held: its thread then takes the last

    def held_delete(project_id, server_id):
        if server_id in held:
            barrier.wait()
        return real_delete(project_id, server_id)

    local_cloud.compute.delete_server = held_delete
    try:
        errors = backend.delete_vms([s.id for s in servers] + ["no-such-server"])
    finally:
        local_cloud.compute.delete_server = real_delete
    assert errors == {}  # an unknown id is already deleted: a success
    assert {s.id for s in servers}.isdisjoint({vm.id for vm in backend.list_vms(owner) if vm.state is not VMState.DELETING})
