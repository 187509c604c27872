"""OpenStack through libcloud's OpenStack driver (CloudType = its class path, as a DIRAC CloudCE
configuration may name it) against LocalCloud over real HTTP: the quota is Nova's limits."""

from __future__ import annotations

import base64

import pytest

from JenniferDIRAC.Resources.Cloud.errors import FailureKind, QuotaExceeded
from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name

DRIVER = "libcloud.compute.drivers.openstack.OpenStack_2_NodeDriver"


@pytest.fixture
def backend(local_cloud):
    c = local_cloud.credentials
    backend = LibcloudBackend(cloud_type=DRIVER, key=c.username, secret=c.password, driver_options={
        "ex_force_auth_url": f"{local_cloud.base_url}/identity", "ex_force_auth_version": "3.x_password",
        "ex_tenant_name": c.project_name, "ex_domain_name": c.domain_name,
        "ex_force_service_region": local_cloud.region_name,
    })
    yield backend
    backend.close()


def spec_for(backend, owner: OwnerTags) -> VMSpec:
    return VMSpec(name=make_vm_name(), image_id=backend.resolve_image("name:EL9-x86_64"),
                  flavor_id=backend.resolve_flavor("name:m1.small").id, user_data=b"#cloud-config\n",
                  metadata=owner.to_metadata(), network_ids=backend.resolve_networks(["name:private"]))


def test_quota_is_novas_limits_and_usage(local_cloud, backend):
    local_cloud.compute.set_quota(instances=3, cores=8, ram=16384)
    owner = OwnerTags(installation="libcloud-os", ce="os.libcloud.example", stamp=make_stamp())
    flavor = backend.resolve_flavor("name:m1.small")
    empty = backend.quota()
    assert (empty.max_instances, empty.used_instances, empty.max_cores, empty.max_ram_mb) == (3, 0, 8, 16384)
    assert empty.headroom(flavor) == 3

    spec = spec_for(backend, owner)
    vm = backend.create_vm(spec)
    assert vm.state in (VMState.BUILD, VMState.ACTIVE)
    stored = local_cloud.compute.servers[vm.id]
    assert base64.b64decode(stored.user_data) == spec.user_data
    assert [v.id for v in backend.list_vms(owner)] == [vm.id]

    used = backend.quota()
    assert (used.used_instances, used.used_cores, used.used_ram_mb) == (1, flavor.vcpus, flavor.ram_mb)
    assert used.headroom(flavor) == 2
    assert backend.delete_vms([vm.id]) == {}


def test_a_full_project_is_quota(local_cloud, backend):
    local_cloud.compute.set_quota(instances=0)
    owner = OwnerTags(installation="libcloud-os", ce="os.libcloud.example")
    with pytest.raises(QuotaExceeded) as info:
        backend.create_vm(spec_for(backend, owner))
    assert info.value.kind is FailureKind.QUOTA
    assert backend.list_vms(owner) == []
