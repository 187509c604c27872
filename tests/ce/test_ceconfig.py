"""CE parameters -> CloudCEConfig: DIRAC's CloudCE options keep their meaning, new ones validate."""

import pytest

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig, OPENSTACK
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

#: DIRAC's documented OpenStack example, unchanged, plus what getQueuesResolved adds.
DIRAC_EXAMPLE = {
    "CEType": "Cloud",
    "CloudType": "OPENSTACK",
    "Driver_ex_force_auth_url": "https://cloudprov.mysite.example:5000",
    "Driver_ex_force_auth_version": "3.x_password",
    "Driver_ex_tenant_name": "clouduser",
    "Instance_Image": "name:CentOS-7-x86_64-GenericCloud-1905",
    "Instance_Flavor": "name:m1.medium",
    "Instance_Networks": "name:my_public_net,name:my_private_net",
    "Instance_SSHKey": "mysshkey",
    "Site": "CLOUD.Example.uk",
    "Community": "belle",
    "InstallationName": "Belle2-Prod",
}


def parse(**changes):
    params = dict(DIRAC_EXAMPLE)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return CloudCEConfig.from_ce_parameters("cloudprov.mysite.example", params)


def test_dirac_openstack_example_translates_to_keystone_settings():
    config = parse()
    assert config.cloud_type == OPENSTACK and config.is_openstack
    assert config.image == "name:CentOS-7-x86_64-GenericCloud-1905"
    assert config.flavor == "name:m1.medium"
    assert config.networks == ("name:my_public_net", "name:my_private_net")
    assert config.ssh_key == "mysshkey"
    assert config.context_max_lifetime == 14 * 24 * 3600
    assert config.openstack.auth_url == "https://cloudprov.mysite.example:5000/v3"
    assert config.openstack.auth_type == "password"
    assert config.openstack.identity() == {
        "auth_url": "https://cloudprov.mysite.example:5000/v3",
        "project_name": "clouduser",
    }
    assert config.ignored_driver_options == ()
    owner = config.owner("ab" * 16)
    assert (owner.installation, owner.ce, owner.vo, owner.site, owner.stamp) == (
        "Belle2-Prod", "cloudprov.mysite.example", "belle", "CLOUD.Example.uk", "ab" * 16)


def test_domains_region_appcred_and_versioned_url():
    config = parse(
        Driver_ex_force_auth_url="https://keystone.example/identity/v3/",
        Driver_ex_force_auth_version="3.x_appcred",
        Driver_ex_domain_name="users",
        Driver_ex_tenant_domain_id="dom-42",
        Driver_ex_force_service_region="RegionTwo",
        Driver_ex_force_service_type="compute",
    )
    assert config.openstack.auth_url == "https://keystone.example/identity/v3"
    assert config.openstack.auth_type == "v3applicationcredential"
    assert config.openstack.user_domain_name == "users"
    assert config.openstack.project_domain_id == "dom-42"
    assert config.region == "RegionTwo"
    assert config.ignored_driver_options == ("Driver_ex_force_service_type",)


def test_oidc_driver_options_keep_libcloud_meaning():
    project = "0123456789abcdef0123456789abcdef"
    config = parse(
        Driver_ex_force_auth_version="3.x_oidc_access_token",
        Driver_ex_tenant_name="openid",
        Driver_ex_domain_name=project,
    )
    assert config.openstack.auth_type == "v3oidcaccesstoken"
    assert config.openstack.protocol == "openid"
    assert config.openstack.project_id == project and config.openstack.project_name == ""


def test_new_options_are_typed():
    config = parse(
        Region="RegionOne",
        CloudsYamlCloud="fedcloud",
        Instance_SecurityGroups="default, pilots",
        Instance_AvailabilityZone="nova",
        Instance_Metadata="project=belle2, owner=ops",
        QuotaShare="50%",
        MaxStartingVMs="5",
        MaxSubmitThreads="4",
        Context_Profile="belle2",
        Context_ExtPackages="htop, git",
        Context_MaxLifetime="86400",
        AuthURL="https://keystone.example/v3",
        ProjectName="belle",
        UserDomainName="users",
        Interface="internal",
        CACertificates="/etc/pki/tls/ca.pem",
    )
    assert config.openstack.auth_url == "https://keystone.example/v3"
    assert config.openstack.project_name == "belle" and config.openstack.user_domain_name == "users"
    assert config.openstack.interface == "internal" and config.ca_certificates == "/etc/pki/tls/ca.pem"
    assert config.region == "RegionOne" and config.clouds_yaml_cloud == "fedcloud"
    assert config.security_groups == ("default", "pilots")
    assert config.availability_zone == "nova"
    assert dict(config.extra_metadata) == {"project": "belle2", "owner": "ops"}
    assert config.quota_share == 0.5
    assert config.max_starting_vms == 5 and config.max_submit_threads == 4
    assert config.context_profile == "belle2"
    assert config.context_ext_packages == ("htop", "git")
    assert config.context_max_lifetime == 86400


def test_libcloud_cloud_types():
    assert parse(CloudType="ec2").cloud_type == "EC2"
    assert parse(CloudType="mypkg.drivers.MyNodeDriver").cloud_type == "mypkg.drivers.MyNodeDriver"
    assert parse(CloudType=None, CloudsYamlCloud="mycloud").cloud_type == OPENSTACK


@pytest.mark.parametrize(
    "changes, option",
    [
        ({"CloudType": None}, "CloudType"),
        ({"CloudType": "NOSUCHCLOUD"}, "CloudType"),
        ({"Instance_Image": None}, "Instance_Image"),
        ({"Instance_Flavor": "name:"}, "Instance_Flavor"),
        ({"QuotaShare": "1.5"}, "QuotaShare"),
        ({"QuotaShare": "lots"}, "QuotaShare"),
        ({"MaxStartingVMs": "0"}, "MaxStartingVMs"),
        ({"MaxSubmitThreads": "many"}, "MaxSubmitThreads"),
        ({"MaxDeleteThreads": "0"}, "MaxDeleteThreads"),
        ({"MaxDeleteThreads": "65"}, "MaxDeleteThreads"),
        ({"MaxDeleteThreads": "many"}, "MaxDeleteThreads"),
        ({"Context_MaxLifetime": "-1"}, "Context_MaxLifetime"),
        ({"Context_Template": "/nonexistent/template.yaml"}, "Context_Template"),
        ({"Instance_Metadata": "novalue"}, "Instance_Metadata"),
        ({"Instance_Metadata": "jdirac-ce=forged"}, "Instance_Metadata"),
        ({"Instance_ConfigDrive": "perhaps"}, "Instance_ConfigDrive"),
        ({"Driver_ex_force_auth_version": "1.0"}, "Driver_ex_force_auth_version"),
        ({"Driver_ex_force_auth_url": "keystone:5000"}, "Driver_ex_force_auth_url"),
    ],
)
def test_bad_options_name_the_option(changes, option):
    with pytest.raises(ConfigurationError) as excinfo:
        parse(**changes)
    assert excinfo.value.option == option
    assert f"CS option {option}" in str(excinfo.value)


def test_installation_name_required_when_cs_names_none():
    from DIRAC import gConfig

    assert not gConfig.getValue("/DIRAC/InstallationName", "")
    assert not gConfig.getValue("/DIRAC/Configuration/Name", "")
    with pytest.raises(ConfigurationError) as excinfo:
        parse(InstallationName=None)
    assert excinfo.value.option == "InstallationName"
    explicit = CloudCEConfig.from_ce_parameters("ce", {**DIRAC_EXAMPLE, "InstallationName": ""}, installation="X")
    assert explicit.installation == "X"


@pytest.mark.parametrize(
    "url, version, expected",
    [
        ("https://k.example:5000", "3.x_password", "https://k.example:5000/v3"),
        ("https://k.example:5000/", "3.x_appcred", "https://k.example:5000/v3"),
        ("https://k.example/identity/v3", "3.x_password", "https://k.example/identity/v3"),
        ("https://k.example:5000/v2.0", "2.0_password", "https://k.example:5000/v3"),
        ("https://k.example:5000", "2.0_password", "https://k.example:5000/v3"),
    ],
)
def test_keystone_url_translation(url, version, expected):
    config = parse(Driver_ex_force_auth_url=url, Driver_ex_force_auth_version=version)
    assert config.openstack.auth_url == expected
    assert config.openstack.auth_type in ("password", "v3applicationcredential")


# --- unknown options: a misspelling is warned about, DIRAC's own options are not -------------------
#: A queue's parameters as DIRAC's getQueuesResolved and the SiteDirector hand them to the CE.
DIRAC_QUEUE_OPTIONS = {
    "Queue": "default", "GridCE": "cloudprov.mysite.example", "CEType": "Cloud", "maxCPUTime": "2880",
    "SI00": "2000", "CPUTime": "552960", "ExtraPilotOptions": "-M 1", "MaxTotalJobs": "100",
    "MaxWaitingJobs": "10", "Platform": "EL9", "Tag": ["MultiProcessor"], "RequiredTag": [],
    "NumberOfProcessors": "4", "MaxRAM": "8000", "WholeNode": "False", "LocalCEType": "Pool",
    "BundleProxy": "True", "SubmissionMode": "Direct", "architecture": "x86_64", "OS": "EL9",
    "VO": "belle", "WaitingToRunningRatio": "0.5", "Context_EndpointURL": "https://endpoint.example:8449",
}


def test_dirac_queue_options_are_not_unknown():
    assert parse(**DIRAC_QUEUE_OPTIONS).unknown_options == ()


def test_misspelled_options_get_the_closest_known_option():
    config = parse(Instance_Flavour="name:m1.small", QuotaShares="0.5", Zzyzx="1", **DIRAC_QUEUE_OPTIONS)
    problems = dict(config.unknown_options)
    assert set(problems) == {"Instance_Flavour", "QuotaShares", "Zzyzx"}
    assert problems["Instance_Flavour"].endswith("did you mean Instance_Flavor?")
    assert problems["QuotaShares"].endswith("did you mean QuotaShare?")
    assert "did you mean" not in problems["Zzyzx"]


def test_openstack_only_options_are_unknown_to_an_ec2_ce():
    config = parse(CloudType="EC2", Driver_ex_force_auth_url=None, Driver_ex_force_auth_version=None,
                   Driver_ex_tenant_name=None, ProjectName="belle")
    assert [option for option, _ in config.unknown_options] == ["ProjectName"]


# --- what the cloud would refuse at every create is refused at configuration ---------------------
def test_metadata_items_including_ours_are_at_most_128():
    from JenniferDIRAC.Resources.Cloud.ceconfig import OWNER_METADATA_ITEMS

    fits = ",".join(f"k{i}=v" for i in range(128 - OWNER_METADATA_ITEMS))
    assert len(parse(Instance_Metadata=fits).extra_metadata) == 128 - OWNER_METADATA_ITEMS
    with pytest.raises(ConfigurationError) as failure:
        parse(Instance_Metadata=fits + ",one=more")
    assert failure.value.option == "Instance_Metadata" and "128" in str(failure.value)


@pytest.mark.parametrize(
    "changes, option",
    [
        ({"Site": "CLOUD." + "x" * 260 + ".uk"}, "Site"),
        ({"Community": "v" * 256}, "Community"),
        ({"Community": None, "VO": "v" * 256}, "VO"),
        ({"Instance_SSHKey": "key\tname"}, "Instance_SSHKey"),
        ({"Instance_SSHKey": "key\x07bell"}, "Instance_SSHKey"),
        ({"Instance_SecurityGroups": "default, " + "g" * 256}, "Instance_SecurityGroups"),
        ({"Instance_AvailabilityZone": "z" * 256}, "Instance_AvailabilityZone"),
    ],
)
def test_values_nova_refuses_name_the_option(changes, option):
    with pytest.raises(ConfigurationError) as failure:
        parse(**changes)
    assert failure.value.option == option


def test_ce_name_longer_than_a_metadata_value_is_refused():
    with pytest.raises(ConfigurationError) as failure:
        CloudCEConfig.from_ce_parameters("c" * 256, dict(DIRAC_EXAMPLE))
    assert failure.value.option == "CE" and "255" in str(failure.value)


def test_parsing_reads_nothing_but_its_arguments(restore_cs):
    """The installation name comes from the CS only through from_ce_parameters (the boundary)."""
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(CFG().loadFromBuffer("DIRAC\n{\n  InstallationName = FromTheCS\n}\n"))
    params = {**DIRAC_EXAMPLE, "InstallationName": ""}
    with pytest.raises(ConfigurationError) as excinfo:
        CloudCEConfig.parse("ce", params)
    assert excinfo.value.option == "InstallationName"
    assert CloudCEConfig.parse("ce", params, cs_installation="Given").installation == "Given"
    assert CloudCEConfig.from_ce_parameters("ce", params).installation == "FromTheCS"
    assert CloudCEConfig.from_ce_parameters("ce", DIRAC_EXAMPLE).installation == "Belle2-Prod"


def test_max_delete_threads_defaults_to_32_and_is_read():
    assert parse().max_delete_threads == 64
    assert parse(MaxDeleteThreads="12").max_delete_threads == 12
