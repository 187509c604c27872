"""Profiles, rendering, packing and the cloud-init schema check of pilot VM user data."""

import base64
import gzip
import re

import pytest
import yaml

from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import (
    CloudConfigInvalid,
    PilotContext,
    UserDataError,
    UserDataTooLarge,
    get_profile,
    load_profiles,
    pack_user_data,
    render_user_data,
    validate_cloud_config,
)

WRAPPER = "#!/bin/bash\n# stand-in pilot wrapper\necho \"pilot $PILOT_UUID\"\n"
TOKEN = "jdv1.jdirac-x.1900000000.c2lnbmF0dXJl"


def make_context(**changes):
    vm_name = make_vm_name()
    values = dict(
        pilot_reference=pilot_reference("CLOUD.Cloud-A.uk", vm_name),
        pilot_stamp=make_stamp(),
        wrapper=WRAPPER,
        vm_name=vm_name,
        ce_name="CLOUD.Cloud-A.uk",
        site="CLOUD.Cloud-A.uk",
        vo="belle",
        max_lifetime=86400,
        endpoint_url="https://dirac.example.org:9443",
        endpoint_token=TOKEN,
    )
    values.update(changes)
    return PilotContext(**values)


def written_files(text):
    """path -> decoded content of every write_files entry."""
    document = yaml.safe_load(text)
    files = {}
    for entry in document["write_files"]:
        data = base64.b64decode(entry["content"])
        if entry["encoding"] == "gz+b64":
            data = gzip.decompress(data)
        else:
            assert entry["encoding"] == "b64"
        files[entry["path"]] = data.decode()
    return document, files


def test_shipped_profiles_carry_each_communitys_repositories():
    profiles = load_profiles()
    assert set(profiles) >= {"BelleII", "T2K-HyperK"}
    assert profiles["BelleII"].title == "Belle II"
    assert {"belle.cern.ch", "grid.cern.ch"} <= set(profiles["BelleII"].cvmfs_repositories)
    assert {"t2k.egi.eu", "hyperk.egi.eu", "grid.cern.ch"} <= set(profiles["T2K-HyperK"].cvmfs_repositories)
    for profile in profiles.values():
        assert profile.pilot_user != "root"
        assert profile.pilot_environment["X509_CERT_DIR"].startswith("/cvmfs/grid.cern.ch/")


def test_cs_overrides_options_and_adds_profiles_without_code():
    cs = {
        "BelleII": {"CVMFSHTTPProxy": "http://squid.example.org:3128", "HeartbeatSeconds": "60"},
        "MyVO": {"Title": "My VO", "CVMFSRepositories": "myvo.example.org", "PilotUser": "myvopilot"},
    }
    profiles = load_profiles(cs)
    assert profiles["BelleII"].cvmfs_http_proxy == "http://squid.example.org:3128"
    assert profiles["BelleII"].heartbeat_seconds == 60
    assert "belle.cern.ch" in profiles["BelleII"].cvmfs_repositories  # shipped value kept
    assert profiles["MyVO"].cvmfs_repositories == ("myvo.example.org",)
    assert profiles["MyVO"].pilot_user == "myvopilot"
    assert get_profile("MyVO", cs).title == "My VO"


@pytest.mark.parametrize(
    "options, option",
    [
        ({"CVMFSQuotaMB": "lots"}, "CVMFSQuotaMB"),
        ({"PilotUser": "root"}, "PilotUser"),
        ({"CVMFSRepositories": "../etc"}, "CVMFSRepositories"),
        ({"PilotEnvironment": "PILOT_UUID=x"}, "PilotEnvironment"),
        ({"PilotEnvironment": "no equals sign"}, "PilotEnvironment"),
        ({"Template": "../../secret.j2"}, "Template"),
        ({"HardPoweroff": "maybe"}, "HardPoweroff"),
        ({"CVMFSHTTPProxy": "http://x'; reboot; '"}, "CVMFSHTTPProxy"),
        ({"CVMFSRepository": "typo.cern.ch"}, "CVMFSRepository"),
        ({"Packages": "curl; rm -rf /"}, "Packages"),
    ],
)
def test_bad_profile_option_is_named_in_the_error(options, option):
    with pytest.raises(ConfigurationError) as caught:
        load_profiles({"Bad": options})
    assert caught.value.option == f"/Resources/Cloud/Profiles/Bad/{option}"


def test_unknown_profile_names_context_profile():
    with pytest.raises(ConfigurationError) as caught:
        get_profile("NoSuchProfile")
    assert caught.value.option == "Context_Profile"
    assert "BelleII" in str(caught.value)


@pytest.mark.parametrize("name", ["BelleII", "T2K-HyperK"])
def test_every_shipped_profile_renders_valid_cloud_config(name):
    profile = load_profiles()[name]
    ctx = make_context()
    text = render_user_data(ctx, profile)
    validate_cloud_config(text)
    document, files = written_files(text)

    pilot_env = files["/etc/jdirac/pilot.env"]
    assert f"export PILOT_UUID={ctx.pilot_reference}\n" in pilot_env
    assert f"export DIRAC_PILOT_STAMP={ctx.pilot_stamp}\n" in pilot_env
    assert "X509_CERT_DIR=/cvmfs/grid.cern.ch/etc/grid-security/certificates" in pilot_env
    assert TOKEN not in pilot_env  # the pilot user can read this file; the token is root's only
    assert files["/var/lib/jdirac/pilot-wrapper.sh"] == WRAPPER
    cvmfs = files["/etc/cvmfs/default.local"]
    assert "CVMFS_REPOSITORIES=" + ",".join(profile.cvmfs_repositories) in cvmfs
    assert "CVMFS_HTTP_PROXY='auto;DIRECT'" in cvmfs
    vm_env = files["/etc/jdirac/vm.env"]
    assert f"JDIRAC_ENDPOINT_TOKEN={TOKEN}\n" in vm_env
    assert f"JDIRAC_MAX_LIFETIME=86400\n" in vm_env
    assert [e["permissions"] for e in document["write_files"] if e["path"] == "/etc/jdirac/vm.env"] == ["0600"]

    assert "cvmfs" in document["packages"]
    assert any(user != "default" and user["name"] == profile.pilot_user for user in document["users"])
    assert document["runcmd"] == [["/bin/bash", "/var/lib/jdirac/jdirac-boot"]]
    assert document["power_state"]["mode"] == "poweroff"
    boot = files["/var/lib/jdirac/jdirac-boot"]
    assert "timeout" in boot and "runuser -u" in boot and "shutdown_message" in boot
    # The token appears exactly once: in the root-only settings file.
    assert text.count(TOKEN) == 0 and sum(TOKEN in content for content in files.values()) == 1


def test_custom_cs_profile_renders_valid_cloud_config():
    profile = get_profile("MyVO", {"MyVO": {"CVMFSRepositories": "myvo.example.org, grid.cern.ch",
                                            "Packages": "htop", "HardPoweroff": "no"}})
    text = render_user_data(make_context(extra_packages=("jq",)), profile)
    validate_cloud_config(text)
    document, files = written_files(text)
    assert {"cvmfs", "htop", "jq"} <= set(document["packages"])
    assert "JDIRAC_HARD_POWEROFF=no" in files["/etc/jdirac/vm.env"]


def test_preinstalled_dirac_environment_reaches_the_pilot():
    ctx = make_context(extra_env={"PYTHONPATH": "/opt/dirac/lib/python3.11/site-packages", "X509_CERT_DIR": "/etc/ca"},
                       path_prefix="/opt/dirac/bin")
    profile = get_profile("NoCVMFS", {"NoCVMFS": {"CVMFSRepositories": "", "PilotPathPrefix": "/opt/dirac/scripts"}})
    text = render_user_data(ctx, profile)
    validate_cloud_config(text)
    document, files = written_files(text)
    pilot_env = files["/etc/jdirac/pilot.env"]
    assert "export PYTHONPATH=/opt/dirac/lib/python3.11/site-packages\n" in pilot_env
    assert "export X509_CERT_DIR=/etc/ca\n" in pilot_env  # the CE's value wins over the profile's
    assert 'export PATH=/opt/dirac/bin:/opt/dirac/scripts:"$PATH"\n' in pilot_env
    assert "packages" not in document and "yum_repos" not in document
    assert "/etc/cvmfs/default.local" not in files


def test_values_with_shell_characters_are_quoted():
    ctx = make_context(extra_env={"ODD": "a b'$(reboot)"})
    _, files = written_files(render_user_data(ctx, get_profile("BelleII")))
    assert "export ODD='a b'\"'\"'$(reboot)'\n" in files["/etc/jdirac/pilot.env"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"pilot_stamp": "not-hex"}, "pilot_stamp"),
        ({"vm_name": "../etc"}, "vm_name"),
        ({"wrapper": "  "}, "wrapper"),
        ({"max_lifetime": 10}, "max_lifetime"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url"),
        ({"endpoint_token": ""}, "endpoint_token"),
        ({"endpoint_token": "a b\nc"}, "endpoint_token"),
        ({"extra_env": {"PILOT_UUID": "x"}}, "extra_env"),
        ({"ce_name": "ce\nruncmd: [reboot]"}, "ce_name"),
    ],
)
def test_bad_context_is_refused_naming_the_field(changes, field):
    with pytest.raises(UserDataError, match=field):
        render_user_data(make_context(**changes), get_profile("BelleII"))


def test_endpoint_is_optional():
    text = render_user_data(make_context(endpoint_url="", endpoint_token=""), get_profile("BelleII"))
    validate_cloud_config(text)
    _, files = written_files(text)
    assert "JDIRAC_ENDPOINT_URL=''" in files["/etc/jdirac/vm.env"]


def test_template_errors_name_the_template_option(tmp_path):
    broken = tmp_path / "broken.j2"
    broken.write_text("#cloud-config\nrunuser: {{ ctx.no_such_field }}\n")
    with pytest.raises(ConfigurationError) as caught:  # a CE's Context_Template
        render_user_data(make_context(), get_profile("BelleII"), template_path=broken)
    assert caught.value.option == "Context_Template"
    with pytest.raises(ConfigurationError) as caught:  # the profile's own template
        render_user_data(make_context(), get_profile("X", {"X": {"Template": str(broken)}}))
    assert caught.value.option == "/Resources/Cloud/Profiles/X/Template"
    noheader = tmp_path / "noheader.j2"
    noheader.write_text("runcmd: []\n")
    with pytest.raises(ConfigurationError, match="#cloud-config"):
        render_user_data(make_context(), get_profile("BelleII"), template_path=noheader)
    with pytest.raises(ConfigurationError, match="does not exist"):
        render_user_data(make_context(), get_profile("X", {"X": {"Template": "missing.j2"}}))


def test_schema_check_catches_typos_types_and_missing_header():
    valid = render_user_data(make_context(), get_profile("BelleII"))
    with pytest.raises(CloudConfigInvalid, match="write_file: unknown top-level key"):
        validate_cloud_config(valid.replace("\nwrite_files:", "\nwrite_file:"))
    with pytest.raises(CloudConfigInvalid, match="power_state.mode"):
        validate_cloud_config(valid.replace("mode: poweroff", "mode: shutdown-now"))
    with pytest.raises(CloudConfigInvalid, match="#cloud-config"):
        validate_cloud_config(valid.replace("#cloud-config\n", "", 1))
    with pytest.raises(CloudConfigInvalid, match="not valid YAML"):
        validate_cloud_config("#cloud-config\nruncmd: [unclosed\n")


def test_pack_keeps_small_text_and_gzips_large_text():
    small = "#cloud-config\nruncmd: []\n"
    assert pack_user_data(small, 16384) == small.encode()
    large = render_user_data(make_context(wrapper="#!/bin/bash\n" + "echo pilot\n" * 3000), get_profile("BelleII"))
    assert len(large.encode()) > 16384
    packed = pack_user_data(large, 16384)
    assert len(packed) <= 16384
    assert gzip.decompress(packed).decode() == large
    assert pack_user_data(large, 16384) == packed  # deterministic


def test_pack_names_limit_and_size_when_too_large():
    text = "#cloud-config\n#" + base64.b64encode(bytes(range(256)) * 200).decode() + "\n"
    with pytest.raises(UserDataTooLarge) as caught:
        pack_user_data(text, 1000)
    assert caught.value.limit == 1000 and caught.value.size > 1000
    assert re.search(r"\d+ bytes after gzip, over the cloud's limit of 1000 bytes", str(caught.value))
    with pytest.raises(UserDataTooLarge, match="gzip not allowed"):
        pack_user_data("#cloud-config\n" + "x" * 2000, 1000, allow_gzip=False)


@pytest.mark.parametrize("name", ["BelleII", "T2K-HyperK"])
def test_debian_template_installs_cvmfs_from_cern_before_the_boot_script(name):
    profile = get_profile(name, {name: {"Template": "debian.cloud-config.j2"}})
    text = render_user_data(make_context(), profile)
    validate_cloud_config(text)
    document, files = written_files(text)
    assert "yum_repos" not in document
    assert "cvmfs" not in document["packages"] and "curl" in document["packages"]
    install, boot = document["runcmd"]
    assert install[:2] == ["/bin/sh", "-c"] and "cvmfs-release-latest_all.deb" in install[2]
    assert "apt-get install -y -q cvmfs" in install[2]
    assert boot == ["/bin/bash", "/var/lib/jdirac/jdirac-boot"]
    assert "/etc/cvmfs/default.local" in files and "/etc/jdirac/vm.env" in files


def test_custom_template_can_extend_a_shipped_one(tmp_path):
    custom = tmp_path / "site.cloud-config.j2"
    custom.write_text(
        '{% extends "el9.cloud-config.j2" %}\n'
        "{% block before_boot %}\n  - [/usr/bin/echo, site specific step]{% endblock %}\n"
    )
    profile = get_profile("Site", {"Site": {"Template": str(custom), "CVMFSRepositories": "grid.cern.ch"}})
    text = render_user_data(make_context(), profile)
    validate_cloud_config(text)
    document, _ = written_files(text)
    assert document["runcmd"] == [["/usr/bin/echo", "site specific step"], ["/bin/bash", "/var/lib/jdirac/jdirac-boot"]]
    assert "cernvm" in document["yum_repos"]


def test_compressed_files_keep_a_dirac_wrapper_with_a_proxy_well_under_ec2s_limit():
    """DIRAC's own wrapper (with a bundled proxy-sized file), CompressFiles = yes."""
    import bz2
    import os

    from DIRAC.WorkloadManagementSystem.Utilities.PilotWrapper import pilotWrapperScript

    proxy = base64.b64encode(bz2.compress(os.urandom(6000))).decode()
    wrapper = pilotWrapperScript(pilotFilesCompressedEncodedDict={"proxy": proxy},
                                 pilotOptions="-l Belle -N ce -Q q", location="https://pilots.example.org/pilot")
    for name in ("BelleII", "T2K-HyperK"):
        profile = get_profile(name, {name: {"CompressFiles": "yes"}})
        text = render_user_data(make_context(wrapper=wrapper), profile)
        validate_cloud_config(text)
        assert {e["encoding"] for e in yaml.safe_load(text)["write_files"] if e["path"].startswith("/var/lib/jdirac/")} \
            == {"gz+b64"}
        packed = pack_user_data(text, 16384)
        assert len(packed) <= 16384
        # Without CompressFiles the same wrapper does not fit.
        with pytest.raises(UserDataTooLarge):
            pack_user_data(render_user_data(make_context(wrapper=wrapper), get_profile(name)), 16384)
        _, files = written_files(gzip.decompress(packed).decode() if packed[:2] == b"\x1f\x8b" else packed.decode())
        assert files["/var/lib/jdirac/pilot-wrapper.sh"] == wrapper
