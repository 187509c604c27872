"""With the extension installed, CEType = Cloud resolves to our CloudComputingElement."""

import importlib

from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader
from DIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement as DIRACCloudCE
from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

OUR_MODULE = "JenniferDIRAC.Resources.Computing.CloudComputingElement"


def test_our_module_imports():
    # ObjectLoader turns an import error into S_ERROR and the SiteDirector then silently drops
    # every cloud queue: importing the module directly makes such an error fail here.
    module = importlib.import_module(OUR_MODULE)
    assert issubclass(module.CloudComputingElement, DIRACCloudCE)


def test_object_loader_prefers_our_module_to_diracs():
    result = ObjectLoader().loadObject("Resources.Computing.CloudComputingElement")
    assert result["OK"], result.get("Message")
    assert result["Value"].__module__ == OUR_MODULE


def test_factory_builds_our_ce_for_cetype_cloud():
    params = {
        "CloudType": "OPENSTACK",
        "Instance_Image": "name:img",
        "Instance_Flavor": "name:flv",
        "InstallationName": "FoundationTest",
    }
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName="ce.example.org", ceParametersDict=params)
    assert result["OK"], result.get("Message")
    ce = result["Value"]
    assert type(ce).__module__ == OUR_MODULE
    assert ce.ceType == "Cloud"
    assert ce.cloudConfig.image == "name:img"


def test_factory_refuses_a_bad_configuration_naming_the_option():
    params = {"CloudType": "OPENSTACK", "Instance_Flavor": "name:flv", "InstallationName": "FoundationTest"}
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName="ce.example.org", ceParametersDict=params)
    assert not result["OK"]
    assert "Instance_Image" in result["Message"]
