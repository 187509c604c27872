"""apache-libcloud's OpenStack driver (the one DIRAC's own CloudComputingElement uses) against LocalCloud."""

import base64

import pytest
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState, Provider


def _driver(cloud, api_version, auth="password"):
    c = cloud.credentials
    cls = get_driver(Provider.OPENSTACK)
    # As DIRAC's CE configures it: Driver_ex_force_auth_url is the Keystone root, without /v3.
    common = {"ex_force_auth_url": f"{cloud.base_url}/identity", "api_version": api_version,
              "ex_force_service_region": cloud.region_name}
    if auth == "oidc":
        return cls(c.oidc_identity_provider, c.oidc_access_token, ex_tenant_name=c.oidc_protocol,
                   ex_force_auth_version="3.x_oidc_access_token", ex_domain_name=c.domain_name, **common)
    return cls(c.username, c.password, ex_force_auth_version="3.x_password",
               ex_tenant_name=c.project_name, ex_domain_name=c.domain_name, **common)


@pytest.mark.parametrize("api_version", ["1.1", "2.0"])
def test_libcloud_node_lifecycle(local_cloud, api_version):
    drv = _driver(local_cloud, api_version)
    images = drv.list_images()
    assert [i.name for i in images] == ["EL9-x86_64"]
    sizes = {s.name: s for s in drv.list_sizes()}
    assert (sizes["m1.medium"].vcpus, sizes["m1.medium"].ram) == (2, 4096)
    networks = drv.ex_list_networks()
    assert [n.name for n in networks] == ["private"]

    userdata = "#!/bin/sh\necho pilot\n"
    node = drv.create_node(name="pilot-lc", size=sizes["m1.small"], image=images[0],
                           ex_userdata=userdata, ex_metadata={"jdirac-owner": "ce1"}, networks=networks)
    assert node.extra["metadata"] == {"jdirac-owner": "ce1"}
    stored = local_cloud.compute.servers[node.id]
    assert base64.b64decode(stored.user_data).decode() == userdata

    listed = drv.list_nodes()
    assert [(n.id, n.name, n.state) for n in listed] == [(node.id, "pilot-lc", NodeState.RUNNING)]
    assert listed[0].private_ips and listed[0].private_ips[0].startswith("10.0.")

    local_cloud.compute.set_state(node.id, "SHUTOFF")
    assert drv.list_nodes()[0].state == NodeState.STOPPED

    assert drv.destroy_node(node) is True
    assert [n.id for n in drv.list_nodes()] == [node.id]  # listed while Nova deletes it
    local_cloud.compute.finish_deletions()
    assert drv.list_nodes() == []


def test_libcloud_oidc_access_token(local_cloud):
    drv = _driver(local_cloud, "2.0", auth="oidc")
    assert [s.name for s in drv.list_sizes()][:2] == ["m1.tiny", "m1.small"]
    template = "/v3/OS-FEDERATION/identity_providers/<idp>/protocols/<protocol>/auth"
    assert local_cloud.counters.get("identity", "GET", template) == 1
    assert local_cloud.counters.get("identity", "GET", "/v3/auth/projects") == 1


def test_libcloud_sees_error_fault(local_cloud):
    drv = _driver(local_cloud, "2.0")
    local_cloud.faults.error_next_vms(1)
    node = drv.create_node(name="doomed", size=drv.list_sizes()[0], image=drv.list_images()[0])
    listed = drv.list_nodes()
    assert listed[0].id == node.id and listed[0].state == NodeState.ERROR
    assert listed[0].extra["fault"]["code"] == 500
    assert "No valid host was found" in listed[0].extra["fault"]["message"]
