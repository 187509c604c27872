"""python-openstackclient (the `openstack` command) against LocalCloud through a clouds.yaml."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


@pytest.fixture
def openstack_cli(local_cloud, tmp_path):
    config = tmp_path / "clouds.yaml"
    config.write_text(yaml.safe_dump({"clouds": {"local": local_cloud.clouds_yaml_entry()}}))
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(config), "OS_CLOUD": "local"}

    def run(*args, as_json=True):
        cmd = [OPENSTACK, *args, *(["-f", "json"] if as_json else [])]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(args)} failed: {done.stderr[-2000:]}"
        return json.loads(done.stdout) if as_json else done.stdout

    return run


@pytest.mark.slow
def test_openstack_cli_commands(local_cloud, openstack_cli):
    created = openstack_cli("server", "create", "--image", "EL9-x86_64", "--flavor", "m1.medium",
                            "--network", "private", "--property", "jdirac-owner=cli", "cli-vm")
    assert created["name"] == "cli-vm"
    server_id = created["id"]
    assert local_cloud.compute.servers[server_id].metadata == {"jdirac-owner": "cli"}

    listed = openstack_cli("server", "list")
    assert [(s["ID"], s["Status"], s["Flavor"], s["Image"]) for s in listed] == \
        [(server_id, "ACTIVE", "m1.medium", "EL9-x86_64")]

    shown = openstack_cli("server", "show", "cli-vm")
    assert shown["id"] == server_id and shown["status"] == "ACTIVE"

    limits = {row["Name"]: row["Value"] for row in openstack_cli("limits", "show", "--absolute")}
    assert (limits["instances"], limits["instances_used"]) == (10, 1)
    assert (limits["total_cores_used"], limits["total_ram_used"]) == (2, 4096)

    assert [i["Name"] for i in openstack_cli("image", "list")] == ["EL9-x86_64"]
    flavors = {f["Name"]: (f["VCPUs"], f["RAM"]) for f in openstack_cli("flavor", "list")}
    assert flavors["m1.large"] == (4, 8192)
    assert [n["Name"] for n in openstack_cli("network", "list")] == ["private"]

    openstack_cli("server", "delete", "cli-vm", as_json=False)
    assert openstack_cli("server", "list") == []
    assert local_cloud.counters.get("compute", "DELETE", "/v2.1/servers/<server_id>") == 1


@pytest.mark.slow
def test_security_groups_quota_and_zones_the_ce_options_rely_on(local_cloud, openstack_cli):
    groups = openstack_cli("security", "group", "list")
    assert [g["Name"] for g in groups] == ["default"]  # every project has its default group
    local_cloud.network.add_security_group(local_cloud.project_id, "pilots")
    created = openstack_cli("server", "create", "--image", "EL9-x86_64", "--flavor", "m1.small",
                            "--network", "private", "--security-group", "pilots",
                            "--availability-zone", "nova", "sg-vm")
    server = local_cloud.compute.servers[created["id"]]
    assert server.security_groups == ["pilots"] and server.availability_zone == "nova"
    quota = {q["Resource"]: q["Limit"] for q in openstack_cli("quota", "show")}
    assert (quota["instances"], quota["cores"], quota["ram"]) == (10, 20, 51200)
    zones = {z["Zone Name"] for z in openstack_cli("availability", "zone", "list")}
    assert "nova" in zones
