"""LibcloudBackend's EC2 path against moto's EC2 server over real HTTP (SigV4) on loopback."""

from __future__ import annotations

import base64
import uuid

import pytest

from JenniferDIRAC.Resources.Cloud.errors import (
    CloudError,
    CloudUnreachable,
    ConfigurationError,
    NotFound,
)
from JenniferDIRAC.Resources.Cloud.LibcloudBackend import EC2_MAX_USER_DATA_BYTES, LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name

AMI = "ami-03cf127a"  # one of moto's default AMIs
SECRET = "ec2-secret-access-key-value"


def driver_options(host: str, port: int) -> dict[str, str]:
    # as they come from the CS: strings
    return {"region": "us-east-1", "host": host, "port": str(port), "secure": "False",
            "signature_version": "4"}


@pytest.fixture
def backend(moto_ec2, ec2_namespace):
    host, port = moto_ec2
    backend = LibcloudBackend(cloud_type="EC2", key="test", secret=SECRET,
                              driver_options=driver_options(host, port))
    yield backend
    backend.close()


@pytest.fixture
def owner():
    return OwnerTags(installation="test-install", ce=f"ce-{uuid.uuid4().hex[:8]}.example", vo="vo1",
                     stamp=make_stamp())


def spec_for(backend, owner: OwnerTags, user_data: bytes = b"#cloud-config\n") -> VMSpec:
    return VMSpec(
        name=make_vm_name(),
        image_id=backend.resolve_image(AMI),
        flavor_id=backend.resolve_flavor("name:t2.micro").id,
        user_data=user_data,
        metadata=owner.to_metadata(),
    )


def test_ec2_limit_is_16_kib(backend):
    assert backend.max_user_data_bytes == EC2_MAX_USER_DATA_BYTES == 16384


def test_resolve_references(backend):
    assert backend.resolve_image(AMI) == AMI
    flavor = backend.resolve_flavor("name:t2.micro")
    assert (flavor.id, flavor.vcpus, flavor.ram_mb) == ("t2.micro", 1, 1024)
    assert backend.resolve_flavor("t2.micro") == flavor
    with pytest.raises(NotFound, match="no image matches 'name:no-such-image'"):
        backend.resolve_image("name:no-such-image")
    with pytest.raises(NotFound, match="flavor"):
        backend.resolve_flavor("name:no-such-size")


def test_create_list_find_delete(backend, owner, boto):
    user_data = b"#cloud-config\nruncmd:\n  - [echo, hello]\n"
    spec = spec_for(backend, owner, user_data)
    vm = backend.create_vm(spec)
    assert vm.name == spec.name and vm.id.startswith("i-")
    assert vm.state in (VMState.BUILD, VMState.ACTIVE)
    assert vm.owner == OwnerTags.from_metadata(owner.to_metadata())

    # the user data reaches EC2 byte for byte; the owner tags are EC2 tags
    attribute = boto.describe_instance_attribute(InstanceId=vm.id, Attribute="userData")
    assert base64.b64decode(attribute["UserData"]["Value"]) == user_data
    described = boto.describe_instances(InstanceIds=[vm.id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags["jdirac-ce"] == owner.ce and tags["jdirac-installation"] == owner.installation
    assert tags["jdirac-stamp"] == owner.stamp

    listed = backend.list_vms(owner)
    assert [v.id for v in listed] == [vm.id]
    assert listed[0].stamp == owner.stamp and listed[0].flavor_id == "t2.micro"
    assert listed[0].created is not None and listed[0].created.utcoffset().total_seconds() == 0

    found = backend.find_vm_by_name(spec.name, owner)
    assert found is not None and found.id == vm.id
    assert backend.find_vm_by_name(make_vm_name(), owner) is None

    assert "Linux" in backend.console_log(vm.id)

    assert backend.delete_vms([vm.id]) == {}
    assert backend.list_vms(owner) == []  # terminated instances are gone to us
    # deleting again, or a VM that never existed, is a success
    assert backend.delete_vms([vm.id, "i-0123456789abcdef0"]) == {}


def test_ownership_is_by_tags_not_name(backend, owner):
    same_name_prefix = OwnerTags(installation="other-install", ce=owner.ce)
    other_ce = OwnerTags(installation=owner.installation, ce="other-ce.example")
    mine = backend.create_vm(spec_for(backend, owner))
    theirs = [backend.create_vm(spec_for(backend, o)) for o in (same_name_prefix, other_ce)]
    try:
        assert [v.id for v in backend.list_vms(owner)] == [mine.id]
        assert backend.find_vm_by_name(theirs[0].name, owner) is None
    finally:
        assert backend.delete_vms([mine.id] + [v.id for v in theirs]) == {}


def test_user_data_over_16_kib_is_refused_before_any_request(backend, owner, boto):
    at_limit = spec_for(backend, owner, b"#" * EC2_MAX_USER_DATA_BYTES)
    vm = backend.create_vm(at_limit)
    try:
        attribute = boto.describe_instance_attribute(InstanceId=vm.id, Attribute="userData")
        assert len(base64.b64decode(attribute["UserData"]["Value"])) == EC2_MAX_USER_DATA_BYTES
    finally:
        backend.delete_vms([vm.id])
    too_big = spec_for(backend, owner, b"#" * (EC2_MAX_USER_DATA_BYTES + 1))
    with pytest.raises(CloudError, match="16385 bytes exceeds this cloud's limit of 16384"):
        backend.create_vm(too_big)
    assert backend.find_vm_by_name(too_big.name, owner) is None


def test_quota_without_caps_is_unlimited_and_caps_count_live_nodes(backend, moto_ec2, owner, boto):
    flavor = backend.resolve_flavor("t2.micro")
    assert backend.quota().headroom(flavor) == float("inf")
    host, port = moto_ec2
    capped = LibcloudBackend(cloud_type="EC2", key="test", secret=SECRET,
                             driver_options=driver_options(host, port), max_instances=1000)
    before = capped.quota()
    vm = backend.create_vm(spec_for(backend, owner))
    try:
        after = capped.quota()
        assert after.used_instances == before.used_instances + 1
        live = [
            i for r in boto.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        ]
        assert after.used_instances == len(live)
        assert after.headroom(flavor) == 1000 - len(live)
    finally:
        backend.delete_vms([vm.id])


def test_unreachable_endpoint_maps_to_cloud_unreachable_without_secret(ec2_namespace, owner, closed_port):
    backend = LibcloudBackend(cloud_type="EC2", key="AKIDTEST", secret=SECRET,
                              driver_options=driver_options("127.0.0.1", closed_port))
    with pytest.raises(CloudUnreachable) as info:
        backend.list_vms(owner)
    assert SECRET not in str(info.value)


def test_cloud_type_errors_name_the_option():
    with pytest.raises(ConfigurationError, match="CS option CloudType: 'NoSuchCloud' is not a libcloud provider"):
        LibcloudBackend(cloud_type="NoSuchCloud", key="k", secret="s")
    with pytest.raises(ConfigurationError, match="CS option CloudType: cannot load driver class"):
        LibcloudBackend(cloud_type="no_such_module.Driver", key="k", secret="s")
