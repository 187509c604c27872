"""Faults a soak needs: a create that is done but whose response is lost, seeded per-create VM
fate rates, and both from the standalone command."""

import json

import keystoneauth1.exceptions
import openstack
import pytest
import requests
import yaml

from JenniferLocalCloud import LocalCloud
from JenniferLocalCloud.__main__ import main

from test_command import _read_until_ready, _start, _stop


def _create_body(cloud, conn, name):
    image = conn.image.find_image("EL9-x86_64")
    return {"server": {"name": name, "imageRef": image.id, "flavorRef": "2", "networks": "auto"}}


def test_lost_response_creates_the_server_and_drops_the_answer(local_cloud):
    conn = local_cloud.connect()
    headers = {"X-Auth-Token": conn.session.get_token()}
    url = f"{local_cloud.base_url}/compute/v2.1/servers"
    local_cloud.faults.lose_response(service="compute", method="POST", path="/v2.1/servers")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, json=_create_body(local_cloud, conn, "lost-1"), headers=headers, timeout=5)
    assert [s.name for s in conn.compute.servers()] == ["lost-1"]
    assert [e.kind for e in local_cloud.faults.events] == ["lost_response"]


def test_lost_response_held_past_the_client_timeout_lands_late(local_cloud):
    conn = local_cloud.connect()
    headers = {"X-Auth-Token": conn.session.get_token()}
    url = f"{local_cloud.base_url}/compute/v2.1/servers"
    local_cloud.faults.lose_response(delay=1.5, service="compute", method="POST", path="/v2.1/servers")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(url, json=_create_body(local_cloud, conn, "late-1"), headers=headers, timeout=0.3)
    assert list(conn.compute.servers()) == []  # the client gave up; the cloud has not created yet
    deadline_names = []
    for _ in range(100):
        deadline_names = [s.name for s in conn.compute.servers()]
        if deadline_names:
            break
        local_cloud.faults.stopping.wait(0.05)
    assert deadline_names == ["late-1"]


def _fates(seed, creates=200):
    cloud = LocalCloud(seed=seed)
    cloud.faults.vm_fate_rate("error", 0.1)
    cloud.faults.vm_fate_rate("stuck", 0.05)
    return [getattr(cloud.faults.take_vm_fate(), "kind", None) for _ in range(creates)]


def test_vm_fate_rates_are_seeded_and_near_their_rate():
    first = _fates(7)
    assert first == _fates(7)
    assert first != _fates(8)
    assert 8 <= first.count("error") <= 35 and 2 <= first.count("stuck") <= 20
    assert first.count(None) > 140


def test_vm_fate_rate_over_http_and_queue_first(local_cloud):
    conn = local_cloud.connect()
    image = conn.image.find_image("EL9-x86_64")
    local_cloud.faults.vm_fate_rate("error", 1.0)
    local_cloud.faults.stick_next_vms_in_build(1)
    stuck = conn.compute.create_server(name="q", image_id=image.id, flavor_id="2", networks="auto")
    errored = conn.compute.create_server(name="r", image_id=image.id, flavor_id="2", networks="auto")
    assert conn.compute.get_server(stuck.id).status == "BUILD"
    assert conn.compute.get_server(errored.id).status == "ERROR"
    with pytest.raises(ValueError, match="probability"):
        local_cloud.faults.vm_fate_rate("error", 1.5)
    with pytest.raises(ValueError, match="unknown VM fault kind"):
        local_cloud.faults.vm_fate_rate("explode", 0.5)


def test_command_injects_faults_given_as_flags():
    rule = {"kind": "lost_response", "service": "compute", "method": "POST", "path": "/v2.1/servers",
            "probability": 1.0}
    process = _start("--fault", json.dumps(rule), "--vm-fault", "error=1.0", "--seed", "3")
    try:
        entry = yaml.safe_load(_read_until_ready(process))["clouds"]["localcloud"]
        conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
        image = conn.image.find_image("EL9-x86_64")
        for name in ("a", "b"):  # times defaults to unlimited from the command line
            with pytest.raises(keystoneauth1.exceptions.ConnectFailure):
                conn.compute.create_server(name=name, image_id=image.id, flavor_id="2", networks="auto")
        servers = {s.name: s.status for s in conn.compute.servers()}
        assert servers == {"a": "ERROR", "b": "ERROR"}
    finally:
        _stop(process)


@pytest.mark.parametrize("args, words", [
    (["--fault", "{nope"], "--fault '{nope}' is not JSON".replace("}", "")),
    (["--fault", '{"service": "compute"}'], 'with a "kind"'),
    (["--fault", '{"kind": "meltdown"}'], "unknown request fault kind"),
    (["--fault", '{"kind": "drop", "colour": 1}'], "colour"),
    (["--vm-fault", "error"], "use KIND=RATE"),
    (["--vm-fault", "error=lots"], "--vm-fault 'error=lots'"),
    (["--vm-fault", "boom=0.1"], "unknown VM fault kind"),
])
def test_command_refuses_bad_fault_flags(capsys, args, words):
    assert main(args) == 2
    assert words in capsys.readouterr().err
