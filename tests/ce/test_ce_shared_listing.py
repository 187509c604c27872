"""The CEs of one cloud project share one listing and one quota reading (ListingCacheSeconds),
against LocalCloud over real HTTP with openstacksdk underneath."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from ce_testkit import INSTALLATION, PilotAgentsDBView, live_servers, owner_metadata
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.sharedlisting import invalidate_all

LISTING = ("compute", "GET", "/v2.1/servers/detail")
LIMITS = ("compute", "GET", "/v2.1/limits")
CE_NAMES = [f"ce{i}.shared.test" for i in range(4)]
STATES = {"ACTIVE": PilotStatus.RUNNING, "BUILD": PilotStatus.SUBMITTED, "SHUTOFF": PilotStatus.DONE}


def seed(cloud, per_ce=6, installation=INSTALLATION):
    """VMs of each CE in every state; {CE name: {reference: expected pilot status}}."""
    expected = {}
    for c, ce_name in enumerate(CE_NAMES):
        expected[ce_name] = {}
        for i in range(per_ce):
            status = list(STATES)[i % 3]
            name = f"jdirac-{c:02x}{i:030x}"
            server = cloud.compute.add_server(name, cloud.project_id, status=status,
                                              metadata=owner_metadata(ce_name, installation))
            server.stuck = status == "BUILD"
            expected[ce_name][f"cloud://{ce_name}/{name}"] = STATES[status]
    return expected


def warm(ces, cloud):
    """Authenticated and resolved, as the SiteDirector's long-lived CE objects are; the listing
    the warm-up took is forgotten (a new cycle starts) and the counters start from zero."""
    for ce in ces:
        assert ce.getCEStatus()["OK"]
    invalidate_all()
    cloud.counters.reset()


def test_one_listing_and_one_quota_serve_four_ces_monitoring_pass(make_ce, local_cloud):
    expected = seed(local_cloud)
    ces = [make_ce(ce_name=name) for name in CE_NAMES]
    warm(ces, local_cloud)

    with ThreadPoolExecutor(max_workers=4) as pool:  # as SiteDirector.monitorPilots: one thread per queue
        answers = list(pool.map(lambda ce: ce.getJobStatus(list(expected[ce.ceName])), ces))
    statuses = [ce.getCEStatus() for ce in ces]

    for ce, answer in zip(ces, answers):
        assert answer["OK"] and answer["Value"] == expected[ce.ceName]  # each CE only its own VMs
    for status in statuses:
        assert status["OK"] and (status["RunningJobs"], status["WaitingJobs"]) == (2, 2)
    assert local_cloud.counters.get(*LISTING) == 1
    assert local_cloud.counters.get(*LIMITS) == 1
    assert local_cloud.counters.total() == 2


def test_just_created_vm_is_never_reported_deleted_and_a_killed_one_is(make_ce, wrapper, local_cloud):
    first, second = make_ce(ce_name=CE_NAMES[0]), make_ce(ce_name=CE_NAMES[1])
    assert second.getCEStatus()["OK"]  # a listing of the project, taken before the create
    assert first.getJobStatus([])["OK"]

    refs = first.submitJob(wrapper, "", 2)["Value"]
    local_cloud.counters.reset()
    status = first.getJobStatus(refs)["Value"]
    assert set(status.values()) <= {PilotStatus.SUBMITTED, PilotStatus.RUNNING}, status
    assert local_cloud.counters.get(*LISTING) == 0  # the create put its VMs into the held listing
    assert second.getCEStatus()["OK"] and local_cloud.counters.get(*LISTING) == 0

    assert first.killJob(refs[:1])["OK"]
    local_cloud.counters.reset()
    status = first.getJobStatus(refs)["Value"]
    assert local_cloud.counters.get(*LISTING) == 0  # the delete marked it in the held listing
    assert status[refs[0]] == PilotStatus.DELETED
    assert status[refs[1]] in (PilotStatus.SUBMITTED, PilotStatus.RUNNING)
    assert len(live_servers(local_cloud)) == 1


def test_sitedirector_cycle_with_deletions_in_every_ce_lists_the_project_once(
        make_ce, wrapper, local_cloud, monkeypatch):
    """SiteDirector's order: cleanupPilots for every queue (each deleting stopped VMs of final
    pilots), then getJobStatus and getCEStatus, then a submission: one listing for it all."""
    import JenniferDIRAC.Resources.Computing.CloudComputingElement as module

    local_cloud.compute.set_quota(instances=-1, cores=-1, ram=-1)
    expected = seed(local_cloud)
    final = {ref: PilotStatus.DONE for ce in expected.values() for ref, st in ce.items() if st == PilotStatus.DONE}
    monkeypatch.setattr(module, "getPilotAgentsDB", lambda: PilotAgentsDBView(final))
    ces = [make_ce(ce_name=name) for name in CE_NAMES]
    warm(ces, local_cloud)

    deleted = [ce.cleanupPilots()["Value"] for ce in ces]
    answers = [ce.getJobStatus(list(expected[ce.ceName])) for ce in ces]
    statuses = [ce.getCEStatus() for ce in ces]
    refs = ces[0].submitJob(wrapper, "", 1)["Value"]
    after = ces[0].getJobStatus(refs)["Value"]

    assert deleted == [2] * 4
    for ce, answer in zip(ces, answers):
        want = {ref: PilotStatus.DELETED if ref in final else st for ref, st in expected[ce.ceName].items()}
        assert answer["Value"] == want
    assert all(s["OK"] and (s["RunningJobs"], s["WaitingJobs"]) == (2, 2) for s in statuses)
    assert set(after.values()) == {PilotStatus.SUBMITTED}
    assert local_cloud.counters.get(*LISTING) == 1  # was 1 + one per deleting CE
    assert local_cloud.counters.total("compute", "DELETE") == 8
    # what a listing taken now says of the deleted VMs agrees with the held view
    invalidate_all()
    fresh = ces[1].getJobStatus(list(expected[CE_NAMES[1]]))["Value"]
    assert fresh == answers[1]["Value"]


def test_uncertain_create_makes_the_next_caller_list_again(make_ce, wrapper, local_cloud):
    ce = make_ce(ce_name=CE_NAMES[0])
    assert ce.getJobStatus([])["OK"]
    local_cloud.faults.drop_connection(service="compute", method="POST", path="/v2.1/servers", times=1)
    refs = ce.submitJob(wrapper, "", 1)["Value"]
    local_cloud.counters.reset()
    assert set(ce.getJobStatus(refs)["Value"].values()) <= {PilotStatus.SUBMITTED, PilotStatus.RUNNING}
    assert local_cloud.counters.get(*LISTING) == 1


def test_creates_read_the_quota_again(make_ce, wrapper, local_cloud):
    local_cloud.compute.set_quota(instances=5, cores=-1, ram=-1)
    ce = make_ce(ce_name=CE_NAMES[0])
    assert ce.getCEStatus()["CloudSlots"] == 5
    assert ce.submitJob(wrapper, "", 2)["OK"]
    local_cloud.counters.reset()
    assert ce.getCEStatus()["CloudSlots"] == 3
    assert local_cloud.counters.get(*LIMITS) == 1


def test_failed_listing_is_not_kept(make_ce, local_cloud):
    expected = seed(local_cloud, per_ce=3)
    ce = make_ce(ce_name=CE_NAMES[0])
    warm([ce], local_cloud)
    local_cloud.faults.http_error(503, service="compute", method="GET", path="/v2.1/servers/detail", times=1)
    refs = list(expected[CE_NAMES[0]])
    assert set(ce.getJobStatus(refs)["Value"].values()) == {PilotStatus.UNKNOWN}
    assert ce.getJobStatus(refs)["Value"] == expected[CE_NAMES[0]]  # not "all deleted"
    assert local_cloud.counters.get(*LISTING) == 2


def test_listing_cache_seconds_zero_lists_on_every_call(make_ce, local_cloud):
    expected = seed(local_cloud, per_ce=3)
    ces = [make_ce(ce_name=name, ListingCacheSeconds=0) for name in CE_NAMES[:2]]
    warm(ces, local_cloud)
    for ce in ces:
        assert ce.getJobStatus(list(expected[ce.ceName]))["Value"] == expected[ce.ceName]
        assert ce.getCEStatus()["OK"]
    assert local_cloud.counters.get(*LISTING) == 4
    assert local_cloud.counters.get(*LIMITS) == 2


def test_installations_sharing_a_project_do_not_share_a_listing(make_ce, local_cloud):
    ours = seed(local_cloud, per_ce=3)
    theirs = seed(local_cloud, per_ce=0)  # no VMs of "Other"
    assert theirs == {name: {} for name in CE_NAMES}
    mine = make_ce(ce_name=CE_NAMES[0])
    other = make_ce(ce_name=CE_NAMES[0], InstallationName="Other")
    warm([mine, other], local_cloud)
    assert mine.getJobStatus(list(ours[CE_NAMES[0]]))["Value"] == ours[CE_NAMES[0]]
    assert set(other.getJobStatus(list(ours[CE_NAMES[0]]))["Value"].values()) == {PilotStatus.DELETED}
    assert local_cloud.counters.get(*LISTING) == 2


@pytest.mark.parametrize("value", ["-1", "301", "ten"])
def test_bad_listing_cache_seconds_names_the_option(value):
    params = {"CloudType": "OPENSTACK", "Instance_Image": "i", "Instance_Flavor": "f",
              "InstallationName": "x", "ListingCacheSeconds": value}
    with pytest.raises(ConfigurationError, match="ListingCacheSeconds"):
        CloudCEConfig.from_ce_parameters("ce", params)


def test_listing_cache_seconds_default():
    params = {"CloudType": "OPENSTACK", "Instance_Image": "i", "Instance_Flavor": "f",
              "InstallationName": "x"}
    assert CloudCEConfig.from_ce_parameters("ce", params).listing_cache_seconds == 10
