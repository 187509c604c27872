"""docs/example-cs.cfg is valid: its profiles load and render schema-valid user data, its CEs parse."""

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import yaml

from diraccfg import CFG

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext, load_profiles, render_user_data, validate_cloud_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example-cs.cfg"
VENV_BIN = Path(sys.executable).parent


def example():
    return CFG().loadFromFile(str(EXAMPLE)).getAsDict()


def test_example_profiles_load_and_render_valid_cloud_config():
    cs = example()
    profiles = load_profiles(cs["Resources"]["Cloud"]["Profiles"])
    assert {"BelleII", "T2K-HyperK", "HyperK-Big"} <= set(profiles)
    assert profiles["BelleII"].cvmfs_http_proxy == "http://squid.example.org:3128;DIRECT"
    assert profiles["HyperK-Big"].cvmfs_quota_mb == 50000
    endpoint = cs["Resources"]["Cloud"]["Endpoint"]
    for name in ("BelleII", "T2K-HyperK", "T2K-HyperK-Ubuntu"):
        vm_name = make_vm_name()
        ctx = PilotContext(
            pilot_reference=pilot_reference("openstack-a.example.ac.uk", vm_name), pilot_stamp=make_stamp(),
            wrapper="#!/bin/bash\necho pilot\n", vm_name=vm_name, ce_name="openstack-a.example.ac.uk",
            site="CLOUD.OpenStack-A.uk", max_lifetime=172800, endpoint_url=endpoint["URL"],
            endpoint_token="jdv1.x.1.sig",
        )
        text = render_user_data(ctx, profiles[name])
        validate_cloud_config(text)
        written = {f["path"]: f for f in yaml.safe_load(text)["write_files"]}
        vm_env = base64.b64decode(written["/etc/jdirac/vm.env"]["content"]).decode()
        if name != "T2K-HyperK-Ubuntu":
            assert "JDIRAC_ENDPOINT_CAPATH=/cvmfs/grid.cern.ch/etc/grid-security/certificates\n" in vm_env
        assert "JDIRAC_ENDPOINT_URL=https://dirac-cloud.example.org:8449\n" in vm_env


def test_example_ces_parse_with_their_queues():
    sites = example()["Resources"]["Sites"]["CLOUD"]
    profiles = load_profiles(example()["Resources"]["Cloud"]["Profiles"])
    seen = []
    for site_name, site in sites.items():
        for ce_name, ce in site["CEs"].items():
            for queue_name, queue in ce["Queues"].items():
                # DIRAC's mandatory queue options, and one pilot per VM
                assert {"maxCPUTime", "SI00"} <= set(queue) and queue["ExtraPilotOptions"] == "-M 1", queue_name
                params = {k: v for k, v in ce.items() if not isinstance(v, dict)}
                params.update(queue)
                params["Site"] = site_name
                params["InstallationName"] = example()["DIRAC"]["InstallationName"]
                config = CloudCEConfig.from_ce_parameters(ce_name, params)
                seen.append((ce_name, queue_name, config.context_profile))
                # images consistent with their templates: Debian/Ubuntu images get the debian one
                template = profiles[config.context_profile].template
                debian_image = any(word in config.image.lower() for word in ("ubuntu", "debian"))
                assert debian_image == template.startswith("debian"), (ce_name, config.image, template)
    assert ("openstack-b.example.infn.it", "hyperk-cloud", "HyperK-Big") in seen
    assert ("fedcloud-c.example.de", "belle-fedcloud", "BelleII") in seen
    assert len(seen) == 5


def test_example_names_only_shipped_templates_and_has_every_section():
    from JenniferDIRAC.Resources.Cloud.UserData.profiles import TEMPLATES_DIR

    cs = example()
    for name, profile in load_profiles(cs["Resources"]["Cloud"]["Profiles"]).items():
        assert profile.template_path().parent == TEMPLATES_DIR and profile.template_path().is_file(), name
    wms = cs["Systems"]["WorkloadManagement"]
    assert {"VMDirector", "VMEndpoint"} <= set(wms["Agents"])
    assert {a["Module"] for n, a in wms["Agents"].items() if n.startswith("SiteDirector")} == {"SiteDirector"}
    assert wms["Databases"]["VMDB"]["DBName"]
    assert all(vo["Pilot"]["Extensions"] for vo in cs["Operations"].values())


# --- the example as given, against LocalCloud: every CE and queue passes check-ce -----------------
DOCS = EXAMPLE.parent
TOKEN_ENDPOINT = Path(__file__).resolve().parents[1] / "cloud" / "conftest.py"


def token_endpoint_class():
    """The loopback OAuth2 token endpoint of the cloud tests (EGI Check-in's stand-in)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cloud_tests_token_endpoint", TOKEN_ENDPOINT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TokenEndpoint


def substitute(text, replacements):
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the example"
        text = text.replace(old, new)
    return text


@pytest.fixture
def example_site(local_cloud, mariadb, vmdb, tmp_path):
    """docs/example-cs.cfg, docs/cloud.auth and docs/clouds.yaml with only the cloud's and the
    database's addresses, the placeholders and the paths replaced; LocalCloud serves every
    image, flavor and network they name, EGI Check-in is a loopback token endpoint."""
    creds = local_cloud.credentials
    for image in ("AlmaLinux-9-x86_64", "Rocky-9", "EGI AlmaLinux 9", "EGI Ubuntu 22.04"):
        local_cloud.image.add_image(image)
    for network in ("belle-net", "public"):
        local_cloud.network.add_network(network)
    local_cloud.compute.add_flavor("cm4.large", 4, 8192)
    local_cloud.compute.set_quota(instances=50, cores=400, ram=-1)
    checkin = token_endpoint_class()(client_id="token-portal", client_secret="")
    checkin.start()
    access = "oidc-" + uuid.uuid4().hex
    local_cloud.add_oidc_access_token(access)
    checkin.add_grant("refresh-" + access, [access] * 20)

    etc = tmp_path / "etc"
    etc.mkdir()
    auth = etc / "cloud.auth"
    auth.write_text(substitute((DOCS / "cloud.auth").read_text(), {
        "key = belle-robot": f"key = {creds.username}",
        "<Keystone password of belle-robot>": creds.password,
        "<application credential id>": creds.application_credential_id,
        "<application credential secret>": creds.application_credential_secret,
        "<EGI Check-in refresh token of the VO robot>": f"refresh-{access}\ntoken_endpoint = {checkin.url}",
    }))
    clouds = etc / "clouds.yaml"
    clouds.write_text(substitute((DOCS / "clouds.yaml").read_text(), {
        "https://keystone.fedcloud-d.example.es:5000/v3": local_cloud.auth_url,
        "<application credential id>": creds.application_credential_id,
        "<application credential secret>": creds.application_credential_secret,
    }))
    for path in (auth, clouds):
        path.chmod(0o600)
    (etc / "vm-endpoint.secret").write_text("not-a-real-secret-but-long-enough-for-the-example-0123\n")
    (etc / "vm-endpoint.secret").chmod(0o600)
    identity = local_cloud.base_url + "/identity"
    cfg = substitute(EXAMPLE.read_text(), {
        "https://keystone.openstack-a.example.ac.uk:5000": identity,
        "https://keystone.openstack-b.example.infn.it:5000/v3": identity + "/v3",
        "https://keystone.fedcloud-c.example.de:5000/v3": identity + "/v3",
        "Driver_ex_tenant_name = belle\n": f"Driver_ex_tenant_name = {creds.project_name}\n",
        "Driver_ex_tenant_name = neutrino\n": f"Driver_ex_tenant_name = {creds.project_name}\n",
        "0123456789abcdef0123456789abcdef": local_cloud.project_id,
        "/opt/dirac/etc/cloud.auth": str(auth),
        "/opt/dirac/etc/clouds.yaml": str(clouds),
        "/opt/dirac/etc/vm-endpoint.secret": str(etc / "vm-endpoint.secret"),
        "User = Dirac": f"User = {mariadb.user}",
        "<database password>": mariadb.password,
        "db.example.org": mariadb.host,
        "Port = 3306": f"Port = {mariadb.port}",
        "DBName = VMDB": f"DBName = {vmdb.dbname}",
    })
    (etc / "dirac.cfg").write_text(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509", "OS_"))}
    env.update(DIRAC_ROOT_PATH=str(tmp_path), DIRACSYSCONFIG=str(etc / "dirac.cfg"))
    try:
        yield env, checkin
    finally:
        checkin.stop()


def example_ces():
    sites = example()["Resources"]["Sites"]["CLOUD"]
    return {ce: sorted(options["Queues"]) for site in sites.values() for ce, options in site["CEs"].items()}


def test_example_passes_profile_check_and_check_ce_for_every_ce_and_queue(example_site):
    env, checkin = example_site
    res = subprocess.run([str(VENV_BIN / "dirac-vm-profile-check")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("BelleII", "T2K-HyperK", "T2K-HyperK-Ubuntu", "HyperK-Big"):
        assert f"{name}: valid" in res.stdout

    ces = example_ces()
    res = subprocess.run([str(VENV_BIN / "dirac-vm-check-ce"), *ces], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    headers = [line for line in res.stdout.splitlines() if line.startswith("CE ")]
    assert headers == [f"CE {ce} queue {queue}" for ce, queues in ces.items() for queue in queues]
    checks = {}  # queue header -> {check name: verdict}
    for line in res.stdout.splitlines():
        if line.startswith("CE "):
            queue = checks.setdefault(line, {})
        elif line.split()[:1] in (["OK"], ["WARN"], ["FAIL"], ["SKIP"]):
            queue[line.split()[1]] = line.split()[0]
    for header in headers:
        assert {"config", "auth", "image", "flavor", "network", "quota", "user-data"} <= set(checks[header]), header
        assert set(checks[header].values()) == {"OK"}, res.stdout  # no WARN: no unknown option either
    assert checkin.requests, "the EGI Check-in CE did not exchange its refresh token"
