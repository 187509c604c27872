"""CloudCEConfig.parse keeps what it made of parameters: the same items (in the same order) give
back the same frozen configuration, a bad option raises its ConfigurationError every time, and
what the parse reads besides its arguments (whether Context_Template's file exists, the CS's
installation name) is read again every time."""

from __future__ import annotations

import pytest

from JenniferDIRAC.Resources.Cloud import ceconfig
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

CE = "cloud.parsed-once.test"
PARAMS = {
    "CloudType": "OPENSTACK",
    "Driver_ex_force_auth_url": "https://keystone.parsed-once.test:5000",
    "Driver_ex_tenant_name": "project",
    "Instance_Image": "name:EL9",
    "Instance_Flavor": "name:m1.small,name:m1.medium",
    "Site": "CLOUD.Parsed.test",
    "Community": "belle",
    "InstallationName": "parsed-once",
    "Tag": ["MultiProcessor", "el9"],  # getQueuesResolved's lists
    "CPUTime": 86400,
    "Unknwon_Option": "x",  # an unknown option: its closest name is looked up by the first parse
}


def test_the_same_parameters_give_back_the_same_configuration():
    first = CloudCEConfig.parse(CE, dict(PARAMS))
    assert CloudCEConfig.parse(CE, dict(PARAMS)) is first
    assert first.flavors == ("name:m1.small", "name:m1.medium") and first.unknown_options
    other = CloudCEConfig.parse(CE, {**PARAMS, "Instance_Flavor": "name:m1.large"})
    assert other.flavor == "name:m1.large" and first.flavor == "name:m1.small"
    assert CloudCEConfig.parse("other." + CE, dict(PARAMS)).ce_name == "other." + CE
    assert CloudCEConfig.parse(CE, dict(PARAMS), installation="given").installation == "given"


def test_parameters_changed_in_place_are_parsed_again():
    params = {**PARAMS, "Tag": list(PARAMS["Tag"])}
    first = CloudCEConfig.parse(CE, params)
    params["MaxSubmitThreads"] = "3"
    assert CloudCEConfig.parse(CE, params).max_submit_threads == 3 and first.max_submit_threads == 8
    three = CloudCEConfig.parse(CE, params)
    params["Tag"].append("gpu")  # a list changed in place: another key
    assert CloudCEConfig.parse(CE, params) is not three
    assert CloudCEConfig.parse(CE, {**PARAMS, "MaxSubmitThreads": "3"}) is three


def test_values_of_other_types_are_parsed_every_time():
    params = {**PARAMS, "Instance_AvailabilityZone": {"zone-a"}}
    first = CloudCEConfig.parse(CE, params)
    again = CloudCEConfig.parse(CE, params)
    assert first == again and first is not again and first.availability_zones == ("zone-a",)
    assert CloudCEConfig.parse(CE, {**PARAMS, "True": True}) is not CloudCEConfig.parse(CE, {**PARAMS, "True": 1})


def test_a_bad_option_raises_every_time():
    params = {**PARAMS, "MaxSubmitThreads": "many"}
    raised = []
    for _ in range(3):
        with pytest.raises(ConfigurationError) as info:
            CloudCEConfig.parse(CE, dict(params))
        raised.append(info.value)
    assert all(exc.option == "MaxSubmitThreads" for exc in raised)
    assert {str(exc) for exc in raised} == {"CS option MaxSubmitThreads: 'many' is not an integer"}
    assert len({id(exc) for exc in raised}) == 3  # a new exception each time
    with pytest.raises(ConfigurationError, match="Instance_Image: is required"):
        CloudCEConfig.parse(CE, {k: v for k, v in PARAMS.items() if k != "Instance_Image"})
    with pytest.raises(ConfigurationError, match="Instance_Image: is required"):
        CloudCEConfig.parse(CE, {k: v for k, v in PARAMS.items() if k != "Instance_Image"})


def test_context_template_s_file_is_looked_for_every_time(tmp_path, monkeypatch):
    template = tmp_path / "template.yaml"
    params = {**PARAMS, "Context_Template": "$PARSED_ONCE_DIR/template.yaml"}
    monkeypatch.setenv("PARSED_ONCE_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match="Context_Template: file .* does not exist"):
        CloudCEConfig.parse(CE, params)
    template.write_text("#cloud-config\n")
    assert CloudCEConfig.parse(CE, params).context_template == str(template)
    template.unlink()
    with pytest.raises(ConfigurationError, match="Context_Template"):
        CloudCEConfig.parse(CE, params)
    other = tmp_path / "other"
    other.mkdir()
    (other / "template.yaml").write_text("#cloud-config\n")
    monkeypatch.setenv("PARSED_ONCE_DIR", str(other))
    assert CloudCEConfig.parse(CE, params).context_template == str(other / "template.yaml")


def test_the_cs_installation_name_is_part_of_what_is_kept():
    params = {k: v for k, v in PARAMS.items() if k != "InstallationName"}
    assert CloudCEConfig.parse(CE, params, cs_installation="from-cs").installation == "from-cs"
    assert CloudCEConfig.parse(CE, params, cs_installation="renamed").installation == "renamed"


def test_what_is_kept_is_bounded(monkeypatch):
    monkeypatch.setattr(ceconfig, "PARSED_CONFIGURATIONS", 4)
    for number in range(10):
        CloudCEConfig.parse(CE, {**PARAMS, "MaxSubmitThreads": str(number + 1)})
    assert len(ceconfig._PARSED) == 4
    assert CloudCEConfig.parse(CE, {**PARAMS, "MaxSubmitThreads": "10"}).max_submit_threads == 10
