"""Which libcloud clouds a CE may name: the driver profiles, and a clear refusal for the rest."""

from __future__ import annotations

import pytest
from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.drivers import resolve
from JenniferDIRAC.Resources.Cloud.drivers.azure import AzureProfile
from JenniferDIRAC.Resources.Cloud.drivers.ec2 import EC2Profile
from JenniferDIRAC.Resources.Cloud.drivers.openstack_libcloud import OpenStackLibcloudProfile
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

PARAMS = {"Instance_Image": "img", "Instance_Flavor": "flv", "InstallationName": "drivers-test"}


@pytest.mark.parametrize("cloud_type, profile", [
    ("EC2", EC2Profile),
    ("ec2", EC2Profile),
    ("AZURE_ARM", AzureProfile),
    ("libcloud.compute.drivers.ec2.EC2NodeDriver", EC2Profile),
    ("libcloud.compute.drivers.openstack.OpenStack_2_NodeDriver", OpenStackLibcloudProfile),
    ("libcloud.compute.drivers.azure_arm.AzureNodeDriver", AzureProfile),
])
def test_supported_cloud_types(cloud_type, profile):
    assert resolve(cloud_type)[0] is profile


@pytest.mark.parametrize("cloud_type", ["GCE", "OPENNEBULA", "gce", "DIGITAL_OCEAN"])
def test_unsupported_providers_are_refused_at_configuration(cloud_type):
    with pytest.raises(ConfigurationError, match="is not supported") as info:
        CloudCEConfig.from_ce_parameters("ce.drivers.test", {"CloudType": cloud_type, **PARAMS})
    assert info.value.option == "CloudType" and cloud_type.upper() in str(info.value)


def test_unsupported_driver_classes_are_refused():
    with pytest.raises(ConfigurationError, match="GCENodeDriver is not supported") as info:
        resolve("libcloud.compute.drivers.gce.GCENodeDriver")
    assert info.value.option == "CloudType"


def test_the_ce_refuses_gce_naming_cloud_type():
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName="gce.drivers.test",
                                             ceParametersDict={"CloudType": "GCE", **PARAMS})
    ce = result["Value"] if result["OK"] else None
    message = result.get("Message", "") if ce is None else ce.available().get("Message", "")
    assert "CloudType" in message and "GCE is not supported" in message
