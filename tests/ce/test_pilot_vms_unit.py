"""The VM the CE creates for a pilot (CloudCE/pilotvms.py), without a cloud: its spec from the CE's
options, its owner tags with its own stamp, its user data telling the pilot the flavor's cores,
its bootstrap sealed for VMDB; on another flavor after a capacity refusal, the spec last tried
keeps its (possibly re-resolved) image and networks."""

import json

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.model import Flavor, OwnerTags
from JenniferDIRAC.Resources.Computing.CloudCE.pilotvms import PilotVMDesign

CE = "cloud.unit.test"


class Tokens:
    def issue_for_vm(self, name, lifetime):
        return f"report-{name}-{lifetime}"


def design(bootstrap, tokens=None, **options):
    config = CloudCEConfig.parse(CE, {
        "CloudType": "OPENSTACK", "Driver_ex_force_auth_url": "https://keystone.example/v3", "CloudAuth": "/none",
        "Instance_Image": "name:EL9", "Instance_Flavor": "name:m1.small", "Site": "CLOUD.Unit.test",
        "Community": "vo", "InstallationName": "Unit", **options})
    sealed = []

    def seal(authority, name, report_token, wrapper):
        sealed.append((authority, name, report_token, wrapper))
        return b"sealed " + name.encode(), f"bootstrap-{name}"

    rendered = PilotVMDesign(
        config, OwnerTags(installation="Unit", ce=CE, vo="vo", queue="q1"), "#!/bin/bash\necho wrapper\n",
        "https://endpoint.example", tokens, bootstrap,
        render=lambda context: json.dumps({
            "cores": context.extra_env["DIRAC_NUMBER_OF_PROCESSORS"], "token": context.endpoint_token,
            "stamp": context.pilot_stamp, "reference": context.pilot_reference,
            "wrapper": None if context.bootstrap else context.wrapper}).encode(),
        seal=seal,
    )
    return rendered, sealed


def test_a_pilots_vm_has_its_stamp_token_cores_and_the_ce_options():
    made, sealed = design(False, Tokens(), Instance_SSHKey="ops", Instance_SecurityGroups="pilots")
    first = made.vm("jdirac-a", "image-1", Flavor(id="f4", name="m1.large", vcpus=4, ram_mb=8192), ["net-1"], "az1")
    second = made.vm("jdirac-b", "image-1", Flavor(id="f4", name="m1.large", vcpus=4, ram_mb=8192), ["net-1"], "az1")
    spec = first.spec
    assert (spec.name, spec.image_id, spec.flavor_id, spec.network_ids, spec.availability_zone) == (
        "jdirac-a", "image-1", "f4", ["net-1"], "az1")
    assert (spec.key_name, spec.security_groups) == ("ops", ["pilots"])
    owner = OwnerTags.from_metadata(spec.metadata)
    assert (owner.ce, owner.queue, owner.stamp) == (CE, "q1", first.stamp)
    assert first.stamp != second.stamp
    data = json.loads(spec.user_data)
    assert data == {"cores": "4", "token": "report-jdirac-a-" + str(made.config.context_max_lifetime),
                    "stamp": first.stamp, "reference": f"cloud://{CE}/jdirac-a", "wrapper": made.wrapper}
    assert first.sealed is None and sealed == []


def test_with_a_bootstrap_the_wrapper_is_sealed_and_the_user_data_has_the_one_time_token():
    tokens = Tokens()
    made, sealed = design(True, tokens)
    vm = made.vm("jdirac-c", "image-1", Flavor(id="f1", name="m1.small", vcpus=1, ram_mb=2048), [], "")
    assert vm.sealed == b"sealed jdirac-c"
    assert sealed == [(tokens, "jdirac-c", f"report-jdirac-c-{made.config.context_max_lifetime}", made.wrapper)]
    data = json.loads(vm.spec.user_data)
    assert (data["token"], data["wrapper"]) == ("bootstrap-jdirac-c", None)


def test_on_another_flavor_the_last_spec_keeps_its_ids_and_the_pilot_gets_that_flavors_cores():
    made, _ = design(False)
    vm = made.vm("jdirac-d", "old-image", Flavor(id="f4", name="m1.large", vcpus=4, ram_mb=8192), ["old-net"], "az1")
    import dataclasses

    resolved_again = dataclasses.replace(vm.spec, image_id="new-image", network_ids=["new-net"])
    moved = made.on_flavor(vm, resolved_again, Flavor(id="f2", name="m1.medium", vcpus=2, ram_mb=4096), "az2")
    assert (moved.image_id, moved.network_ids, moved.flavor_id, moved.availability_zone) == (
        "new-image", ["new-net"], "f2", "az2")
    data = json.loads(moved.user_data)
    assert (data["cores"], data["stamp"]) == ("2", vm.stamp)
    assert moved.metadata == vm.spec.metadata
