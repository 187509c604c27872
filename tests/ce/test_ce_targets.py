"""The cloud CE against both OpenStack targets (``openstack_target``: LocalCloud and real
Keystone 30 + Nova 34): what the CE promises must hold on real Nova, not only on our emulator.
VM counts stay small: real Nova boots about one VM a second here."""

from __future__ import annotations

import pytest
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.references import parse_reference

from ce_testkit import CE_NAME, INSTALLATION, SITE, VO, PilotAgentsDBView, owner_metadata
from cloudconfig_testkit import pilot_environment
from openstack_testkit import wait_until
from targets import AUTH_KINDS


def by_name(target):
    return {s.name: s for s in target.live_servers()}


def vm_name(ref):
    return parse_reference(ref)[1]


def test_security_group_and_zone_options_reach_the_vm(make_target_ce, wrapper, openstack_target):
    ce = make_target_ce(Instance_SecurityGroups="default", Instance_AvailabilityZone="nova")
    result = ce.submitJob(wrapper, "", 1)
    assert result["OK"], result.get("Message")
    (server,) = openstack_target.live_servers()
    openstack_target.wait_active([server.id])
    (server,) = openstack_target.live_servers()
    assert server.security_groups == ["default"] and server.availability_zone == "nova"

    unknown = make_target_ce(ce_name="nosuchgroup.local.test", Instance_SecurityGroups="no-such-group")
    refused = unknown.submitJob(wrapper, "", 1)
    assert not refused["OK"]
    assert len(openstack_target.live_servers()) == 1  # nothing created for the refused CE
    if openstack_target.name == "localcloud":
        # Nova's 400 names the group; the real side's Neutron (Nova's test fixture) fails the
        # lookup with a 500 instead, so only the refusal itself is compared there
        assert "no-such-group" in refused["Message"]


@pytest.mark.parametrize("auth", AUTH_KINDS)
def test_each_way_of_authenticating_runs_a_cycle(make_target_ce, wrapper, openstack_target, auth):
    ce = make_target_ce(auth=auth)
    available = ce.available()
    assert available["OK"], available.get("Message")
    submitted = ce.submitJob(wrapper, "", 1)
    assert submitted["OK"], submitted.get("Message")
    (ref,) = submitted["Value"]
    status = ce.getJobStatus([ref])
    assert status["OK"] and status["Value"][ref] in (PilotStatus.SUBMITTED, PilotStatus.RUNNING)
    assert list(by_name(openstack_target)) == [vm_name(ref)]


def test_submit_carries_user_data_and_owner_metadata(make_target_ce, wrapper, openstack_target):
    ce = make_target_ce()
    result = ce.submitJob(wrapper, "", 2)
    assert result["OK"], result.get("Message")
    servers = by_name(openstack_target)
    assert sorted(servers) == sorted(vm_name(r) for r in result["Value"])
    for ref in result["Value"]:
        server = servers[vm_name(ref)]
        stamp = result["PilotStampDict"][ref]
        assert server.metadata["jdirac-installation"] == INSTALLATION
        assert server.metadata["jdirac-ce"] == CE_NAME
        assert server.metadata["jdirac-vo"] == VO
        assert server.metadata["jdirac-site"] == SITE
        assert server.metadata["jdirac-stamp"] == stamp
        text = server.user_data_text()
        assert text.startswith("#cloud-config")
        env = pilot_environment(text)
        assert env["PILOT_UUID"] == ref and env["DIRAC_PILOT_STAMP"] == stamp


def test_quota_from_limits_unlimited_set_and_exceeded(make_target_ce, wrapper, openstack_target):
    ce = make_target_ce(MaxWaitingJobs=4, ListingCacheSeconds=0)
    openstack_target.set_quota(instances=-1, cores=-1, ram=-1)
    status = ce.getCEStatus()
    assert status["OK"] and status["CloudSlots"] is None
    assert ce.available()["Value"] == 4  # MaxWaitingJobs decides alone

    openstack_target.set_quota(instances=2, cores=-1, ram=-1)
    available = ce.available()
    assert available["Value"] == 2 and available["CEInfoDict"]["CloudSlotsLimitedBy"] == "project quota"
    result = ce.submitJob(wrapper, "", 3)  # more than fits: partial success
    assert result["OK"] and len(result["Value"]) in (2, 3)
    # the third create is refused (403) or, racing the quota recheck on real Nova, accepted and
    # put in ERROR with a 413 fault. Real Nova's recheck counts every instance of the project when
    # each build is scheduled, so three concurrent builds can all see 3 > 2 and two or even all
    # three end in ERROR (seen in a clean-clone CI run: one ACTIVE, two ERROR): never a third
    # running VM, and every VM not running carries the quota fault.
    servers = wait_until(lambda: (v := openstack_target.live_servers()) and all(
        s.status in ("ACTIVE", "ERROR") for s in v) and v, 60, "creates settled")
    running = [s for s in servers if s.status == "ACTIVE"]
    assert len(running) <= 2
    if openstack_target.name == "localcloud":
        assert len(running) == 2
    assert all(s.fault["code"] == 413 for s in servers if s.status == "ERROR")
    assert ce.available()["Value"] == 0
    full = ce.submitJob(wrapper, "", 1)
    assert not full["OK"] and "quota" in full["Message"].lower()
    assert len([s for s in openstack_target.live_servers() if s.status != "ERROR"]) == len(running)


def test_quota_recheck_race_leaves_error_vms_that_are_failed_pilots(make_target_ce, wrapper, openstack_target):
    """Back-to-back creates all get 202; Nova's conductor rechecks the quota and puts the extra
    VMs in ERROR with a 413 fault. The CE must report those as failed pilots, not running."""
    ce = make_target_ce(MaxWaitingJobs=10, ListingCacheSeconds=0, MaxCreateAttempts=1)
    openstack_target.set_quota(instances=-1, cores=-1, ram=-1)
    assert ce.available()["OK"]  # the CE reads "unlimited" and plans 4
    openstack_target.arm_quota_race(instances=2, creates=4)
    result = ce.submitJob(wrapper, "", 4)
    refs = result.get("Value") or []
    servers = wait_until(lambda: (v := by_name(openstack_target)) and all(
        s.status in ("ACTIVE", "ERROR") for s in v.values()) and v, 60, "creates settled")
    errored = [s for s in servers.values() if s.status == "ERROR"]
    assert errored, "the race produced no ERROR VM"
    assert all(s.fault and s.fault["code"] == 413 and "Quota exceeded" in s.fault["message"] for s in errored)
    statuses = ce.getJobStatus(refs)["Value"]
    for ref in refs:
        expected = PilotStatus.FAILED if servers[vm_name(ref)].status == "ERROR" else PilotStatus.RUNNING
        assert statuses[ref] == expected, ref


def test_job_status_over_every_vm_state(make_target_ce, wrapper, openstack_target):
    ce = make_target_ce(ListingCacheSeconds=0)
    states = {"ACTIVE": PilotStatus.RUNNING, "SHUTOFF": PilotStatus.DONE, "ERROR": PilotStatus.FAILED}
    refs = {}
    for index, state in enumerate(states):
        name = f"jdirac-{index + 1:032x}"
        openstack_target.add_vm(name, owner_metadata(), state)
        refs[state] = f"cloud://{CE_NAME}/{name}"
    gone = f"cloud://{CE_NAME}/jdirac-{99:032x}"
    deleting = f"cloud://{CE_NAME}/jdirac-{98:032x}"
    deleting_id = openstack_target.add_vm(vm_name(deleting), owner_metadata(), "ACTIVE")
    openstack_target.request_delete(deleting_id)
    listed = {s.name: s for s in openstack_target.servers()}
    assert listed[vm_name(deleting)].task_state == "deleting"  # still listed, as real Nova does

    result = ce.getJobStatus(list(refs.values()) + [gone, deleting])
    assert result["OK"]
    assert result["Value"] == {**{refs[s]: p for s, p in states.items()},
                               gone: PilotStatus.DELETED, deleting: PilotStatus.DELETED}
    status = ce.getCEStatus()
    assert status["RunningJobs"] == 1


def test_job_output_is_the_console_log_and_kill_removes_the_vms(make_target_ce, wrapper, openstack_target):
    ce = make_target_ce()
    result = ce.submitJob(wrapper, "", 2)
    refs = result["Value"]
    servers = by_name(openstack_target)
    openstack_target.wait_active([servers[vm_name(r)].id for r in refs])
    output = ce.getJobOutput(f"{refs[0]}:::{result['PilotStampDict'][refs[0]]}")
    assert output["OK"], output.get("Message")
    stdout, stderr = output["Value"]
    assert stdout.strip() and stderr == ""
    assert openstack_target.console_marker(servers[vm_name(refs[0])].id) in stdout

    openstack_target.counters.reset()
    assert ce.killJob(refs)["OK"]
    assert openstack_target.counters.get("compute", "GET", "/v2.1/servers/detail") == 1
    assert openstack_target.live_servers() == []  # each one being deleted (or already gone)
    openstack_target.finish_deletions()
    assert openstack_target.servers() == []
    assert ce.killJob(refs)["OK"]  # all gone: still a success
    assert not ce.getJobOutput(refs[0])["OK"]


def test_monitoring_n_vms_costs_one_listing(make_target_ce, openstack_target):
    ce = make_target_ce(ListingCacheSeconds=0)
    refs = []
    for index, state in enumerate(("ACTIVE", "SHUTOFF", "ACTIVE")):
        name = f"jdirac-{index + 10:032x}"
        openstack_target.add_vm(name, owner_metadata(), state)
        refs.append(f"cloud://{CE_NAME}/{name}")
    assert ce.getCEStatus()["OK"]  # warms the token and the flavor cache
    openstack_target.counters.reset()
    statuses = ce.getJobStatus(refs)["Value"]
    assert list(statuses.values()) == [PilotStatus.RUNNING, PilotStatus.DONE, PilotStatus.RUNNING]
    assert openstack_target.counters.total() == 1
    assert openstack_target.counters.get("compute", "GET", "/v2.1/servers/detail") == 1
    openstack_target.counters.reset()
    status = ce.getCEStatus()
    assert (status["RunningJobs"], status["WaitingJobs"]) == (2, 0)
    assert openstack_target.counters.total(service="compute") == 2  # one listing + the limits


def test_cleanup_deletes_only_stopped_vms_whose_pilots_are_final(make_target_ce, openstack_target, monkeypatch):
    import JenniferDIRAC.Resources.Computing.CloudComputingElement as module

    cases = {  # VM state, pilot status in PilotAgentsDB (None: no pilot), deleted?
        "a": ("SHUTOFF", PilotStatus.DONE, True),
        "b": ("ERROR", PilotStatus.FAILED, True),
        "c": ("SHUTOFF", PilotStatus.RUNNING, False),  # the SiteDirector has not seen it end yet
        "d": ("ACTIVE", PilotStatus.DONE, False),  # a zombie: the VMDirector's decision
        "e": ("SHUTOFF", None, False),  # unknown to PilotAgentsDB: an orphan for the VMDirector
    }
    statuses, ids = {}, {}
    for key, (state, pilot, _) in cases.items():
        name = "jdirac-" + key * 32
        ids[key] = openstack_target.add_vm(name, owner_metadata(), state)
        if pilot:
            statuses[f"cloud://{CE_NAME}/{name}"] = pilot
    foreign = openstack_target.add_vm("jdirac-" + "f" * 32, owner_metadata(installation="Other"), "SHUTOFF")
    statuses[f"cloud://{CE_NAME}/jdirac-{'f' * 32}"] = PilotStatus.DONE
    db = PilotAgentsDBView(statuses)
    monkeypatch.setattr(module, "getPilotAgentsDB", lambda: db)

    result = make_target_ce().cleanupPilots()
    assert result["OK"] and result["Value"] == 2
    remaining = {s.id for s in openstack_target.live_servers()}
    for key, (_, _, deleted) in cases.items():
        assert (ids[key] not in remaining) == deleted, key
    assert foreign in remaining
    assert len(db.asked) == 1  # one PilotAgentsDB query for all stopped VMs
