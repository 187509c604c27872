"""The cloud CE against LocalCloud over real HTTP, with openstacksdk underneath."""

from __future__ import annotations

import re

import pytest
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.references import parse_reference

from ce_testkit import (
    CE_NAME,
    INSTALLATION,
    SITE,
    VO,
    live_servers,
    owner_metadata,
    user_data_text,
)
from cloudconfig_testkit import pilot_environment, vm_settings

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def by_name(cloud):
    return {s.name: s for s in live_servers(cloud)}


def test_submit_returns_references_and_stamps_the_vms_carry(make_ce, wrapper, local_cloud):
    ce = make_ce()
    result = ce.submitJob(wrapper, "", 3)
    assert result["OK"], result.get("Message")
    refs = result["Value"]
    assert len(refs) == 3 and len(set(refs)) == 3
    assert set(result["PilotStampDict"]) == set(refs)
    servers = by_name(local_cloud)
    assert len(servers) == 3
    for ref in refs:
        ce_name, vm_name = parse_reference(ref)
        assert ce_name == CE_NAME and ref == f"cloud://{CE_NAME}/{vm_name}"
        stamp = result["PilotStampDict"][ref]
        assert HEX32.match(stamp)
        server = servers[vm_name]
        assert server.metadata["jdirac-installation"] == INSTALLATION
        assert server.metadata["jdirac-ce"] == CE_NAME
        assert server.metadata["jdirac-vo"] == VO
        assert server.metadata["jdirac-site"] == SITE
        assert server.metadata["jdirac-stamp"] == stamp
        text = user_data_text(server)
        assert text.startswith("#cloud-config")
        env = pilot_environment(text)
        assert env["PILOT_UUID"] == ref and env["DIRAC_PILOT_STAMP"] == stamp
        assert server.flavor.name == "m1.small"
        assert list(server.addresses) == ["private"]


def test_submit_options_reach_the_vm(make_ce, wrapper, local_cloud):
    local_cloud.compute.add_keypair(local_cloud.credentials.user_id, "pilotkey")
    local_cloud.network.add_security_group(local_cloud.project_id, "pilots")  # Nova refuses unknown groups
    ce = make_ce(Instance_SSHKey="pilotkey", Instance_Metadata="experiment=belle2",
                 Instance_SecurityGroups="default,pilots", Instance_AvailabilityZone="nova")
    assert ce.submitJob(wrapper, "", 1)["OK"]
    (server,) = live_servers(local_cloud)
    assert server.key_name == "pilotkey"
    assert server.metadata["experiment"] == "belle2"
    assert server.security_groups == ["default", "pilots"]


def test_pilot_status_follows_the_vm(make_ce, wrapper, local_cloud):
    ce = make_ce(LostPilotGrace=0)  # a VM missing from the listing is gone at once
    local_cloud.faults.stick_next_vms_in_build(1)
    refs = ce.submitJob(wrapper, "", 5)["Value"]
    servers = by_name(local_cloud)
    ids = {ref: servers[parse_reference(ref)[1]].id for ref in refs}
    # creates run concurrently: find which VM drew the "stuck in BUILD" fate
    (building,) = [ref for ref in refs if servers[parse_reference(ref)[1]].stuck]
    active, stopped, failed, gone = [ref for ref in refs if ref != building]
    local_cloud.compute.set_state(ids[stopped], "SHUTOFF")
    local_cloud.compute.set_state(ids[failed], "ERROR", fault="No valid host was found")
    local_cloud.compute.delete_server(None, ids[gone])

    result = ce.getJobStatus(refs)
    assert result["OK"]
    assert result["Value"] == {
        building: PilotStatus.SUBMITTED,
        active: PilotStatus.RUNNING,
        stopped: PilotStatus.DONE,
        failed: PilotStatus.FAILED,
        gone: PilotStatus.DELETED,
    }
    status = ce.getCEStatus()
    assert (status["WaitingJobs"], status["RunningJobs"]) == (1, 1)


def test_cloud_outage_gives_unknown_status_and_ce_status_error(make_ce, wrapper, local_cloud):
    ce = make_ce()
    refs = ce.submitJob(wrapper, "", 2)["Value"]
    local_cloud.faults.http_error(503, service="compute", times=None)
    result = ce.getJobStatus(refs)
    assert result["OK"]
    assert set(result["Value"].values()) == {PilotStatus.UNKNOWN}
    status = ce.available()
    assert not status["OK"] and CE_NAME in status["Message"]
    submit = ce.submitJob(wrapper, "", 1)
    assert not submit["OK"] and "503" in submit["Message"]


def test_kill_is_bulk_and_already_gone_is_success(make_ce, wrapper, local_cloud):
    ce = make_ce()
    refs = ce.submitJob(wrapper, "", 3)["Value"]
    first = by_name(local_cloud)[parse_reference(refs[0])[1]]
    local_cloud.compute.delete_server(None, first.id)
    local_cloud.counters.reset()
    assert ce.killJob(refs)["OK"]
    assert live_servers(local_cloud) == []
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 1
    assert ce.killJob(refs)["OK"]  # all gone: still a success


def test_job_output_is_the_console_log(make_ce, wrapper, local_cloud):
    ce = make_ce()
    result = ce.submitJob(wrapper, "", 1)
    ref = result["Value"][0]
    output = ce.getJobOutput(f"{ref}:::{result['PilotStampDict'][ref]}")
    assert output["OK"], output.get("Message")
    stdout, stderr = output["Value"]
    assert f"LocalCloud virtual machine" in stdout and parse_reference(ref)[1] in stdout
    assert stderr == ""
    ce.killJob([ref])
    local_cloud.compute.finish_deletions()  # Nova answers for a VM being deleted, not for one gone
    assert not ce.getJobOutput(ref)["OK"]


def test_monitoring_n_vms_costs_one_listing(make_ce, local_cloud):
    ce = make_ce(ListingCacheSeconds=0)  # each call lists (sharing: test_ce_shared_listing.py)
    project = local_cloud.project_id
    refs = []
    for i in range(60):
        name = f"jdirac-{i:032x}"
        server = local_cloud.compute.add_server(name, project, status=("ACTIVE", "BUILD", "SHUTOFF")[i % 3],
                                                metadata=owner_metadata())
        server.stuck = server.status == "BUILD"
        refs.append(f"cloud://{CE_NAME}/{name}")
    assert ce.getCEStatus()["OK"]  # warms the token and the flavor cache
    local_cloud.counters.reset()
    statuses = ce.getJobStatus(refs)["Value"]
    assert len(statuses) == 60
    assert local_cloud.counters.total() == 1
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 1
    local_cloud.counters.reset()
    status = ce.getCEStatus()
    assert (status["RunningJobs"], status["WaitingJobs"]) == (20, 20)
    assert local_cloud.counters.total(service="compute") == 2  # one listing + the limits


def test_only_this_installations_and_ces_vms_count(make_ce, wrapper, local_cloud):
    project = local_cloud.project_id
    local_cloud.compute.add_server("jdirac-" + "a" * 32, project, metadata=owner_metadata(installation="Other"))
    local_cloud.compute.add_server("jdirac-" + "b" * 32, project, metadata=owner_metadata(ce_name="other.ce"))
    local_cloud.compute.add_server("jdirac-" + "c" * 32, project, status="SHUTOFF")
    ce = make_ce()
    status = ce.getCEStatus()
    assert (status["RunningJobs"], status["WaitingJobs"]) == (0, 0)
    foreign = [f"cloud://{CE_NAME}/jdirac-" + c * 32 for c in "abc"]
    assert set(ce.getJobStatus(foreign)["Value"].values()) == {PilotStatus.DELETED}
    assert ce.killJob(foreign)["OK"]
    assert len(live_servers(local_cloud)) == 3  # none of them touched


def test_quota_limits_submission_and_full_project_leaves_nothing(make_ce, wrapper, local_cloud):
    local_cloud.compute.set_quota(instances=10, cores=-1, ram=-1)
    ce = make_ce(MaxWaitingJobs=50)
    local_cloud.compute.add_server("someone-else", local_cloud.project_id)  # not ours, uses quota
    available = ce.available()
    assert available["OK"] and available["Value"] == 9
    assert available["CEInfoDict"]["CloudSlotsLimitedBy"] == "project quota"

    result = ce.submitJob(wrapper, "", 12)  # more than fits: partial success
    assert result["OK"]
    assert len(result["Value"]) == 9
    assert len(live_servers(local_cloud)) == 10
    assert ce.available()["Value"] == 0

    full = ce.submitJob(wrapper, "", 1)
    assert not full["OK"] and "quota" in full["Message"].lower()
    assert len(live_servers(local_cloud)) == 10


def test_cores_quota_costs_the_flavor_and_minus_one_is_unlimited(make_ce, local_cloud):
    local_cloud.compute.set_quota(instances=-1, cores=5, ram=-1)
    # the quota changes behind the CE's back: read it on every call
    ce = make_ce(Instance_Flavor="name:m1.medium", ListingCacheSeconds=0)  # 2 vCPUs
    status = ce.getCEStatus()
    assert status["CloudSlots"] == 2
    local_cloud.compute.set_quota(instances=-1, cores=-1, ram=-1)
    status = ce.getCEStatus()
    assert status["CloudSlots"] is None
    assert ce.available()["Value"] == 50  # MaxWaitingJobs decides alone


def test_quota_share_and_max_starting(make_ce, wrapper, local_cloud):
    local_cloud.compute.set_quota(instances=20, cores=-1, ram=-1)
    ce = make_ce(QuotaShare="25%")
    assert ce.available()["Value"] == 5
    assert len(ce.submitJob(wrapper, "", 3)["Value"]) == 3
    assert ce.available()["Value"] == 2
    capped = make_ce(ce_name="capped.local.test", MaxStartingVMs=2)
    local_cloud.faults.stick_next_vms_in_build(1)
    assert len(capped.submitJob(wrapper, "", 1)["Value"]) == 1
    status = capped.available()
    assert status["Value"] == 1 and status["CEInfoDict"]["CloudSlotsLimitedBy"] == "MaxStartingVMs"


def test_vm_failing_at_creation_is_a_failed_pilot(make_ce, wrapper, local_cloud):
    ce = make_ce()
    local_cloud.faults.error_next_vms(1, message="No valid host was found")
    refs = ce.submitJob(wrapper, "", 3)["Value"]
    assert len(refs) == 3
    statuses = ce.getJobStatus(refs)["Value"]
    assert sorted(statuses.values()) == [PilotStatus.FAILED, PilotStatus.RUNNING, PilotStatus.RUNNING]


@pytest.mark.parametrize("fault", ["http_error", "drop_connection"])
def test_failed_create_is_retried_without_duplicates(make_ce, wrapper, local_cloud, fault):
    ce = make_ce()
    getattr(local_cloud.faults, fault)(service="compute", method="POST", path="/v2.1/servers", times=2)
    result = ce.submitJob(wrapper, "", 4)
    assert result["OK"] and len(result["Value"]) == 4
    names = [s.name for s in live_servers(local_cloud)]
    assert sorted(names) == sorted(parse_reference(r)[1] for r in result["Value"])
    assert local_cloud.faults.count() == 2


def test_timed_out_create_is_found_by_name_not_recreated(make_ce, wrapper, local_cloud):
    # The cloud holds the create past the client's timeout, then creates the VM anyway.
    ce = make_ce(HTTPTimeout=1, MaxCreateAttempts=2, retry_delay=2.0)
    local_cloud.faults.slow(2.0, service="compute", method="POST", path="/v2.1/servers", times=1)
    result = ce.submitJob(wrapper, "", 1)
    assert result["OK"], result.get("Message")
    assert local_cloud.counters.get("compute", "POST", "/v2.1/servers") == 1
    (server,) = live_servers(local_cloud)
    assert result["Value"] == [f"cloud://{CE_NAME}/{server.name}"]


def test_nothing_created_is_an_error_naming_the_cause(make_ce, wrapper, local_cloud):
    ce = make_ce(MaxCreateAttempts=1)
    local_cloud.faults.http_error(500, service="compute", method="POST", path="/v2.1/servers", times=None)
    result = ce.submitJob(wrapper, "", 2)
    assert not result["OK"] and "no VM created" in result["Message"]
    assert live_servers(local_cloud) == []


def test_unknown_image_is_a_configuration_error_naming_the_option(make_ce, wrapper):
    ce = make_ce(Instance_Image="name:NoSuchImage")
    result = ce.submitJob(wrapper, "", 1)
    assert not result["OK"] and "Instance_Image" in result["Message"]


def test_vms_get_the_endpoint_url_and_their_own_token(make_ce, wrapper, local_cloud, tmp_path, vmdb):
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import (
        BOOTSTRAP_PREFIX,
        TokenAuthority,
        create_secret_file,
    )

    secret_file = tmp_path / "vm-endpoint.secret"
    create_secret_file(secret_file)
    ce = make_ce(Context_EndpointURL="http://127.0.0.1:8449", Context_TokenSecretFile=str(secret_file))
    refs = ce.submitJob(wrapper, "", 2)["Value"]
    authority = TokenAuthority.from_secret_file(secret_file)
    for server in live_servers(local_cloud):
        text = user_data_text(server)
        vm_env = vm_settings(text)
        assert vm_env["JDIRAC_ENDPOINT_URL"] == "http://127.0.0.1:8449"
        # a one-time bootstrap token; the wrapper itself waits sealed in VMDB
        assert authority.verify(vm_env["JDIRAC_ENDPOINT_TOKEN"], BOOTSTRAP_PREFIX).vm_name == server.name
        assert vm_env["JDIRAC_BOOTSTRAP"] == "yes" and "/var/lib/jdirac/pilot-wrapper.sh" not in text
        assert vm_env["JDIRAC_ENDPOINT_TOKEN"] not in str(pilot_environment(text))  # the pilot never sees it
        assert vmdb.db._query("SELECT COUNT(*) FROM VMBootstrap WHERE `VMName` = %s AND `Sealed` IS NOT NULL",
                              args=(server.name,))["Value"][0][0] == 1
    assert len(refs) == 2

    broken = make_ce(ce_name="broken.local.test", Context_EndpointURL="http://127.0.0.1:8449",
                     Context_TokenSecretFile=str(tmp_path / "missing.secret"))
    result = broken.submitJob(wrapper, "", 1)
    assert not result["OK"] and "Context_TokenSecretFile" in result["Message"]


def test_outage_while_resolving_is_not_a_configuration_error(make_ce, wrapper, local_cloud):
    ce = make_ce()
    local_cloud.faults.http_error(503, service="image", path="/v2/images", times=None)
    result = ce.submitJob(wrapper, "", 1)
    assert not result["OK"] and "Instance_Image" not in result["Message"]
    local_cloud.faults.clear()
    assert len(ce.submitJob(wrapper, "", 1)["Value"]) == 1  # nothing bad was cached


def test_user_data_too_large_even_compressed_is_a_clear_error(make_ce, local_cloud, tmp_path):
    import secrets

    wrapper = tmp_path / "huge-wrapper.sh"
    wrapper.write_text("#!/bin/bash\n# " + secrets.token_hex(4096) + "\n")  # 8 KiB that gzip cannot shrink
    ce = make_ce(MaxUserDataBytes=4096)
    result = ce.submitJob(str(wrapper), "", 1)
    assert not result["OK"] and "4096 bytes" in result["Message"] and "after gzip" in result["Message"]
    assert live_servers(local_cloud) == []
