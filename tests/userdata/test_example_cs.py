"""docs/example-cs.cfg is valid: its profiles load and render schema-valid user data, its CEs parse."""

import base64
from pathlib import Path

import yaml

from diraccfg import CFG

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext, load_profiles, render_user_data, validate_cloud_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example-cs.cfg"


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
    seen = []
    for site_name, site in sites.items():
        for ce_name, ce in site["CEs"].items():
            for queue_name, queue in ce["Queues"].items():
                params = {k: v for k, v in ce.items() if not isinstance(v, dict)}
                params.update(queue)
                params["Site"] = site_name
                params["InstallationName"] = example()["DIRAC"]["InstallationName"]
                config = CloudCEConfig.from_ce_parameters(ce_name, params)
                seen.append((ce_name, queue_name, config.context_profile))
    assert ("openstack-b.example.infn.it", "hyperk-cloud", "HyperK-Big") in seen
    assert ("fedcloud-c.example.de", "belle-fedcloud", "BelleII") in seen
    assert len(seen) == 5
