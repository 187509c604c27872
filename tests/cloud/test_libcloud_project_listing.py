"""InstallationQuotaWeights on the libcloud clouds: LibcloudBackend.list_project_vms lists the VMs
of every installation (told apart by their jdirac-installation tag) in one listing: EC2 against
moto's EC2 server (a region no other test uses, so the account holds only this module's
instances), Azure against the loopback stand-in, OpenStack through libcloud against LocalCloud;
and a Belle II CE on EC2 weighing T2K and GridPP apart."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

from JenniferDIRAC.Resources.Cloud.backends import make_backend
from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import TAG_INSTALLATION, OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name
from JenniferDIRAC.Resources.Computing.CloudCE.lending import forget_usage

AMI = "ami-03cf127a"  # one of moto's default AMIs, in every region
REGION = "eu-west-3"  # this module's alone on the session's moto server
INSTALLATIONS = {"Belle2DIRAC": 3, "T2KDIRAC": 2, "GridPPDIRAC": 1}


def ec2_options(moto_ec2) -> dict[str, str]:
    host, port = moto_ec2
    return {"region": REGION, "host": host, "port": str(port), "secure": "False", "signature_version": "4"}


@pytest.fixture
def ec2(moto_ec2, ec2_namespace, boto):
    backend = LibcloudBackend(cloud_type="EC2", key="test", secret="ec2-listing-secret",
                              driver_options=ec2_options(moto_ec2))
    yield backend
    # whatever a test left in the region goes: the next test sees an empty account
    reservations = _region_boto(boto).describe_instances()["Reservations"]
    live = [i["InstanceId"] for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if live:
        _region_boto(boto).terminate_instances(InstanceIds=live)
    backend.close()


def _region_boto(boto):
    import boto3

    return boto3.client("ec2", endpoint_url=boto.meta.endpoint_url, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def ec2_spec(backend, owner: OwnerTags) -> VMSpec:
    return VMSpec(name=make_vm_name(), image_id=AMI, flavor_id=backend.resolve_flavor("name:t2.micro").id,
                  user_data=b"#cloud-config\n", metadata=owner.to_metadata())


def create_installations(backend, spec_for, counts: dict[str, int]) -> dict[str, list[str]]:
    """VMs of each installation, two CEs each where it has more than one VM: {installation: ids}."""
    ids: dict[str, list[str]] = {}
    for installation, count in counts.items():
        for i in range(count):
            owner = OwnerTags(installation=installation, ce=f"ce{i % 2}.{installation.lower()}.test",
                              stamp=make_stamp())
            ids.setdefault(installation, []).append(backend.create_vm(spec_for(backend, owner)).id)
    return ids


def by_installation(vms) -> Counter:
    return Counter(vm.owner.installation for vm in vms)


def test_ec2_lists_every_installation_of_the_region_by_its_tag(ec2, boto):
    ids = create_installations(ec2, ec2_spec, INSTALLATIONS)
    region = _region_boto(boto)
    # an instance JenniferDIRAC did not start, and one whose installation tag alone is missing
    (untagged,) = region.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"]
    (ce_only,) = region.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "jdirac-ce", "Value": "ce0.belle2dirac.test"}]}])["Instances"]
    ended = ids["T2KDIRAC"].pop()
    assert ec2.delete_vms([ended]) == {}  # terminated: EC2 lists it for an hour, we do not

    vms = ec2.list_project_vms()

    assert by_installation(vms) == {"Belle2DIRAC": 3, "T2KDIRAC": 1, "GridPPDIRAC": 1}
    assert {vm.id for vm in vms} == {i for group in ids.values() for i in group}
    assert not {untagged["InstanceId"], ce_only["InstanceId"]} & {vm.id for vm in vms}
    assert all(vm.state in (VMState.BUILD, VMState.ACTIVE) and vm.flavor_id == "t2.micro" for vm in vms)
    # the installation's own listing is still only its CE's
    belle = OwnerTags(installation="Belle2DIRAC", ce="ce0.belle2dirac.test")
    assert len(ec2.list_vms(belle)) == 2


def test_azure_lists_the_resource_groups_vms_without_an_instance_view_each(azure):
    from azure_arm_standin import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT

    backend = LibcloudBackend(cloud_type="AZURE_ARM", key=CLIENT_ID, secret=CLIENT_SECRET,
                              auth={"tenant_id": TENANT, "subscription_id": SUBSCRIPTION},
                              driver_options={"region": "eastus", "ex_resource_group": "000000",
                                              "ex_subnet": "Azure_VPC_Subnet", "management_url": azure.url,
                                              "login_url": azure.url})
    network = backend.resolve_networks(["name:test_network"])

    def spec_for(backend, owner):
        return VMSpec(name=make_vm_name(), image_id="OpenLogic:CentOS:7.3:latest", flavor_id="Standard_A1",
                      user_data=b"#cloud-config\n", metadata=owner.to_metadata(), network_ids=network)

    ids = create_installations(backend, spec_for, INSTALLATIONS)
    for vm_id, state in ((ids["Belle2DIRAC"][0], "Succeeded"), (ids["T2KDIRAC"][0], "Deleting"),
                         (ids["GridPPDIRAC"][0], "Failed")):
        azure.vms[vm_id]["properties"]["provisioningState"] = state
    azure.requests.clear()

    vms = backend.list_project_vms()

    # the recorded first page's VM has no tags: not JenniferDIRAC's
    assert by_installation(vms) == INSTALLATIONS
    states = {vm.id: vm.state for vm in vms}
    assert states[ids["Belle2DIRAC"][0]] is VMState.ACTIVE and states[ids["Belle2DIRAC"][1]] is VMState.BUILD
    assert states[ids["T2KDIRAC"][0]] is VMState.DELETING and states[ids["GridPPDIRAC"][0]] is VMState.ERROR
    assert [path for _, path in azure.requests if path.endswith("/InstanceView")] == []
    assert all(path.endswith("/virtualMachines") for _, path in azure.requests), azure.requests
    assert backend.delete_vms([i for group in ids.values() for i in group]) == {}
    backend.close()


def test_openstack_through_libcloud_lists_every_installation_of_the_project(local_cloud):
    c = local_cloud.credentials
    backend = LibcloudBackend(cloud_type="libcloud.compute.drivers.openstack.OpenStack_2_NodeDriver",
                              key=c.username, secret=c.password, driver_options={
                                  "ex_force_auth_url": f"{local_cloud.base_url}/identity",
                                  "ex_force_auth_version": "3.x_password", "ex_tenant_name": c.project_name,
                                  "ex_domain_name": c.domain_name,
                                  "ex_force_service_region": local_cloud.region_name})
    local_cloud.compute.set_quota(instances=20, cores=-1, ram=-1)
    image, network = backend.resolve_image("name:EL9-x86_64"), backend.resolve_networks(["name:private"])
    flavor = backend.resolve_flavor("name:m1.small").id

    def spec_for(backend, owner):
        return VMSpec(name=make_vm_name(), image_id=image, flavor_id=flavor, user_data=b"#cloud-config\n",
                      metadata=owner.to_metadata(), network_ids=network)

    before = by_installation(backend.list_project_vms())
    ids = create_installations(backend, spec_for, INSTALLATIONS)
    try:
        mine = [vm for vm in backend.list_project_vms() if vm.id in {i for g in ids.values() for i in g}]
        assert by_installation(mine) == INSTALLATIONS
        assert by_installation(backend.list_project_vms()) == before + Counter(INSTALLATIONS)
    finally:
        assert backend.delete_vms([i for group in ids.values() for i in group]) == {}
        backend.close()


@pytest.fixture
def belle_ce(moto_ec2, ec2_namespace, tmp_path):
    auth = tmp_path / "cloud.auth"
    auth.write_text("[DEFAULT]\nkey = test\nsecret = ec2-weights-secret\n")
    os.chmod(auth, 0o600)
    host, port = moto_ec2
    params = {
        "CloudType": "EC2", "Driver_region": REGION, "Driver_host": host, "Driver_port": str(port),
        "Driver_secure": "False", "Driver_signature_version": "4", "CloudAuth": str(auth),
        "Instance_Image": AMI, "Instance_Flavor": "name:t2.micro", "InstallationName": "Belle2DIRAC",
        "Site": "CLOUD.EC2.test", "Community": "belle", "Quota_MaxInstances": "12",
        "MaxTotalJobs": "20", "MaxWaitingJobs": "20",
        "QuotaWeight": "3", "InstallationQuotaWeights": "T2KDIRAC:2, GridPPDIRAC:1", "ListingCacheSeconds": "0",
    }
    forget_usage()
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName="belle.ec2.test", ceParametersDict=params)
    assert result["OK"], result.get("Message")
    ce = result["Value"]
    yield ce
    ce.shutdown()
    forget_usage()


def slots(ce):
    status = ce.available()
    assert status["OK"], status.get("Message")
    return status["Value"], status["CEInfoDict"]["CloudSlotsLimitedBy"]


def test_a_belle_ce_on_ec2_weighs_t2k_and_gridpp_apart(belle_ce, ec2):
    """Belle II 3, T2K 2, GridPP 1 on 12 instances. Belle II at its 6, GridPP at its 2, T2K idle
    for a whole cycle: when GridPP starts a third VM (over its own share) T2K's idle share is
    still lent to Belle II. Seen as one community of others (2:1 of the rest), GridPP's start
    would be others claiming their share of 6, and nothing would be lent."""
    config = belle_ce.cloudConfig
    belle = make_backend(config)
    try:
        for _ in range(6):
            belle.create_vm(ec2_spec(belle, config.owner(make_stamp())))
    finally:
        belle.close()
    gridpp = create_installations(ec2, ec2_spec, {"GridPPDIRAC": 2})["GridPPDIRAC"]

    assert slots(belle_ce) == (0, "QuotaWeight")  # at its share; nothing was left free a cycle yet
    gridpp += create_installations(ec2, ec2_spec, {"GridPPDIRAC": 1})["GridPPDIRAC"]
    assert slots(belle_ce)[0] == 3  # T2K's 4 stayed free a cycle: lent, all 3 left free
    t2k = create_installations(ec2, ec2_spec, {"T2KDIRAC": 1})["T2KDIRAC"]
    assert slots(belle_ce) == (0, "QuotaWeight")  # T2K starts under its share: it wants it
    listed = ec2.list_project_vms()
    counted = Counter(vm.metadata[TAG_INSTALLATION] for vm in listed)
    assert counted == {"Belle2DIRAC": 6, "GridPPDIRAC": 3, "T2KDIRAC": 1}
    assert set(gridpp + t2k) <= {vm.id for vm in listed}
