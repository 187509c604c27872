"""Azure ARM through libcloud's AzureNodeDriver over real HTTP, against a loopback stand-in
answering with Azure's recorded responses (azure_arm_standin.py)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from azure_arm_standin import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT

from JenniferDIRAC.Resources.Cloud.backends import make_backend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import (
    CapacityExhausted,
    CloudAuthError,
    ConfigurationError,
    FailureKind,
    QuotaExceeded,
)
from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import TAG_STAMP, OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name
from JenniferDIRAC.Resources.Cloud.resolving import StaleReference
from JenniferDIRAC.Resources.Cloud.submission import create_vms

RG = "000000"
IMAGE = "OpenLogic:CentOS:7.3:latest"
AUTH = {"tenant_id": TENANT, "subscription_id": SUBSCRIPTION}


def options(url: str, **more: str) -> dict[str, str]:
    return {"region": "eastus", "ex_resource_group": RG, "ex_subnet": "Azure_VPC_Subnet",
            "management_url": url, "login_url": url, **more}


@pytest.fixture
def backend(azure):
    backend = LibcloudBackend(cloud_type="AZURE_ARM", key=CLIENT_ID, secret=CLIENT_SECRET, auth=AUTH,
                              driver_options=options(azure.url))
    yield backend
    backend.close()


@pytest.fixture
def owner():
    return OwnerTags(installation="azure-test", ce="azure.cloud.test", vo="vo1", stamp=make_stamp())


def spec_for(backend, owner: OwnerTags, user_data: bytes = b"#cloud-config\nruncmd:\n  - [echo, pilot]\n") -> VMSpec:
    return VMSpec(name=make_vm_name(), image_id=backend.resolve_image(IMAGE),
                  flavor_id=backend.resolve_flavor("name:Standard_A1").id, user_data=user_data,
                  metadata=owner.to_metadata(), network_ids=backend.resolve_networks(["name:test_network"]))


def test_create_list_stop_delete(azure, backend, owner):
    flavor = backend.resolve_flavor("Standard_A1")
    assert (flavor.vcpus, flavor.ram_mb) == (1, 1792)
    spec = spec_for(backend, owner)
    vm = backend.create_vm(spec)
    assert vm.name == spec.name and vm.id.endswith(f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{spec.name}")
    assert vm.state is VMState.ACTIVE and vm.owner == OwnerTags.from_metadata(owner.to_metadata())

    (put,) = azure.vm_puts
    profile = put["properties"]
    assert base64.b64decode(profile["osProfile"]["customData"]) == spec.user_data  # cloud-init's user data
    assert put["tags"] == owner.to_metadata() and put["location"] == "eastus"
    assert profile["hardwareProfile"]["vmSize"] == "Standard_A1"
    assert profile["storageProfile"]["imageReference"] == {
        "publisher": "OpenLogic", "offer": "CentOS", "sku": "7.3", "version": "latest"}
    assert profile["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert profile["storageProfile"]["osDisk"]["managedDisk"] == {"storageAccountType": "Standard_LRS"}
    assert profile["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] == "true"
    assert profile["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"].startswith("ssh-rsa ")
    (nic_ref,) = profile["networkProfile"]["networkInterfaces"]
    assert nic_ref["properties"]["deleteOption"] == "Delete"
    nic = azure.nics[nic_ref["id"]]
    assert nic["name"] == f"{spec.name}-nic"
    assert nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] == (
        "/subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/REVIZOR/providers/"
        "Microsoft.Network/virtualNetworks/test_network/subnets/Azure_VPC_Subnet")
    assert CLIENT_SECRET not in json.dumps(azure.vm_puts)

    # the resource group also holds someone else's VM (the recorded first page): ours only
    listed = backend.list_vms(owner)
    assert [(v.id, v.name, v.state, v.stamp) for v in listed] == [(vm.id, spec.name, VMState.ACTIVE, owner.stamp)]
    assert listed[0].flavor_id == "Standard_A1" and listed[0].image_id == IMAGE
    assert backend.find_vm_by_name(spec.name, owner).id == vm.id
    assert backend.find_vm_by_name(make_vm_name(), owner) is None
    assert backend.list_vms(OwnerTags(installation="other", ce=owner.ce)) == []

    azure.power[vm.id] = "stopped"  # the pilot ended and the VM powered itself off
    assert [v.state for v in backend.list_vms(owner)] == [VMState.SHUTOFF]

    assert backend.delete_vms([vm.id]) == {}
    assert azure.vms == {} and azure.nics == {}  # one DELETE took the NIC along
    assert backend.list_vms(owner) == []
    assert backend.delete_vms([vm.id]) == {}  # already gone is a success
    assert azure.token_requests == 1


def test_concurrent_creates_share_one_token(azure, backend, owner):
    specs = [spec_for(backend, OwnerTags(installation=owner.installation, ce=owner.ce, stamp=make_stamp()))
             for _ in range(8)]
    submission = create_vms(backend, specs, owner, max_threads=8, attempts=1)
    assert [o.error for o in submission.failed] == []
    for outcome in submission.outcomes:
        stored = azure.vms[outcome.vm.id]
        assert stored["name"] == outcome.spec.name
        assert stored["tags"][TAG_STAMP] == outcome.spec.metadata[TAG_STAMP]
    assert len(backend.list_vms(owner)) == 8
    assert azure.token_requests == 1


@pytest.mark.parametrize("status, code, message, error, kind", [
    (409, "OperationNotAllowed", "Operation could not be completed as it results in exceeding approved "
     "standardAFamily Cores quota. Additional details - Deployment Model: Resource Manager, Location: eastus, "
     "Current Limit: 10, Current Usage: 10, Additional Required: 1, (Minimum) New Limit Required: 11.",
     QuotaExceeded, FailureKind.QUOTA),
    (409, "SkuNotAvailable", "The requested size for resource '/subscriptions/.../virtualMachines/x' is currently "
     "not available in location 'eastus' zones '' for subscription '9999'. Please try another size or deploy "
     "to a different location or zones.", CapacityExhausted, FailureKind.CAPACITY),
    (404, "PlatformImageNotFound", "The platform image 'OpenLogic:CentOS:7.3:latest' is not available.",
     None, FailureKind.CONFIGURATION),
])
def test_refused_creates_are_typed_and_leave_no_nic(azure, backend, owner, status, code, message, error, kind):
    azure.fail_next_create = (status, code, message)
    with pytest.raises(error or Exception) as info:
        backend.create_vm(spec_for(backend, owner))
    assert info.value.kind is kind and code in str(info.value)
    if code == "PlatformImageNotFound":  # the image id is gone: the CE resolves it again
        assert isinstance(info.value, StaleReference) and info.value.what == "image"
    assert azure.vms == {} and azure.nics == {}


def test_a_vm_without_instance_view_yet_is_building(azure, backend, owner):
    azure.instance_view_missing = True
    vm = backend.create_vm(spec_for(backend, owner))
    assert vm.state is VMState.BUILD  # created, whatever the InstanceView says
    assert [(v.id, v.state) for v in backend.list_vms(owner)] == [(vm.id, VMState.BUILD)]
    azure.instance_view_missing = False
    assert [v.state for v in backend.list_vms(owner)] == [VMState.ACTIVE]
    assert backend.delete_vms([vm.id]) == {}


def test_a_refused_service_principal_is_an_auth_error(azure):
    with pytest.raises(CloudAuthError, match="AADSTS7000215") as info:
        LibcloudBackend(cloud_type="AZURE_ARM", key=CLIENT_ID, secret="wrong-secret-value", auth=AUTH,
                        driver_options=options(azure.url)).list_vms(OwnerTags(installation="i", ce="c"))
    assert "wrong-secret-value" not in str(info.value)


@pytest.mark.parametrize("auth, driver_options, option", [
    ({"subscription_id": SUBSCRIPTION}, {}, "CloudAuth"),
    (AUTH, {"ex_resource_group": ""}, "Driver_ex_resource_group"),
    (AUTH, {"region": ""}, "Region"),
    (AUTH, {"cloud_environment": "Mars"}, "Driver_cloud_environment"),
    (AUTH, {"host": "127.0.0.1"}, "Driver_host"),
])
def test_missing_azure_settings_name_the_option(azure, auth, driver_options, option):
    with pytest.raises(ConfigurationError) as info:
        LibcloudBackend(cloud_type="AZURE_ARM", key=CLIENT_ID, secret=CLIENT_SECRET, auth=auth,
                        driver_options=options(azure.url) | driver_options)
    assert info.value.option == option


def test_image_must_be_an_urn_or_a_resource_id(backend):
    with pytest.raises(ConfigurationError, match="Instance_Image"):
        backend.resolve_image("name:AlmaLinux-9")


def test_ce_configuration_with_a_service_principal_in_cloud_auth(azure, tmp_path, owner):
    auth = tmp_path / "cloud.auth"
    auth.write_text(f"[azure.cloud.test]\nkey = {CLIENT_ID}\nsecret = {CLIENT_SECRET}\n"
                    f"tenant_id = {TENANT}\nsubscription_id = {SUBSCRIPTION}\n")
    os.chmod(auth, 0o600)
    config = CloudCEConfig.from_ce_parameters("azure.cloud.test", {
        "CloudType": "AZURE_ARM", "CloudAuth": str(auth), "Region": "eastus",
        "Driver_ex_resource_group": RG, "Driver_ex_subnet": "Azure_VPC_Subnet",
        "Driver_management_url": azure.url, "Driver_login_url": azure.url,
        "Instance_Image": IMAGE, "Instance_Flavor": "name:Standard_A1", "Instance_Networks": "name:test_network",
    }, installation=owner.installation)
    backend = make_backend(config)
    vm = backend.create_vm(spec_for(backend, config.owner(make_stamp())))
    assert [v.id for v in backend.list_vms(config.owner())] == [vm.id]
    assert backend.delete_vms([vm.id]) == {}


def test_ssh_key_network_by_id_default_subnet_admin_user_and_disk_type(azure):
    driver_options = {k: v for k, v in options(azure.url).items() if k != "ex_subnet"}
    driver_options |= {"ex_user_name": "pilotadmin", "ex_storage_account_type": "Premium_LRS"}
    backend = LibcloudBackend(cloud_type="AZURE_ARM", key=CLIENT_ID, secret=CLIENT_SECRET, auth=AUTH,
                              driver_options=driver_options)
    vnet = ("/subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/REVIZOR/providers/"
            "Microsoft.Network/virtualNetworks/test_network")
    assert backend.resolve_networks([vnet]) == [vnet]
    owner = OwnerTags(installation="azure-test", ce="azure.cloud.test")
    public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvc3Qta2V5LWZvci10ZXN0cy1vbmx5AAAAAAAA admin@example"
    spec = VMSpec(name=make_vm_name(), image_id=IMAGE, flavor_id="Standard_A1", user_data=b"#cloud-config\n",
                  metadata=owner.to_metadata(), network_ids=[vnet], key_name=public_key)
    vm = backend.create_vm(spec)
    put = azure.vm_puts[0]
    assert put["properties"]["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == public_key
    assert put["properties"]["osProfile"]["adminUsername"] == "pilotadmin"
    assert put["properties"]["storageProfile"]["osDisk"]["managedDisk"] == {"storageAccountType": "Premium_LRS"}
    nic = azure.nics[put["properties"]["networkProfile"]["networkInterfaces"][0]["id"]]
    assert nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] == f"{vnet}/subnets/default"
    custom_image = ("/subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/000000/providers/"
                    "Microsoft.Compute/images/el9-pilot")
    assert backend.resolve_image(custom_image) == custom_image
    second = backend.create_vm(VMSpec(name=make_vm_name(), image_id=custom_image, flavor_id="Standard_A1",
                                      user_data=b"", metadata=owner.to_metadata(), network_ids=[vnet]))
    assert azure.vm_puts[-1]["properties"]["storageProfile"]["imageReference"] == {"id": custom_image}
    with pytest.raises(ConfigurationError) as info:
        backend.create_vm(VMSpec(name=make_vm_name(), image_id=IMAGE, flavor_id="Standard_A1", user_data=b"",
                                 metadata=owner.to_metadata(), network_ids=[vnet], key_name="my-keypair"))
    assert info.value.option == "Instance_SSHKey"
    assert backend.delete_vms([vm.id, second.id]) == {}
    assert azure.nics == {}
