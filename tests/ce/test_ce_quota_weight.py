"""QuotaWeight on the CE: two installations (Belle II 3, T2K 1) on one LocalCloud project of 8
instances; the idle one's share is lent after one cycle, and given back only as VMs end."""

from __future__ import annotations

from ce_testkit import live_servers


def slots(ce):
    status = ce.available()
    assert status["OK"], status.get("Message")
    return status["Value"], status["CEInfoDict"]["CloudSlotsLimitedBy"]


def end_naturally(cloud, names):
    for server in live_servers(cloud):
        if server.name in names:
            cloud.compute.delete_server(None, server.id)
    cloud.clock.advance(3600)  # Nova's DELETE has finished


def test_weights_lend_the_idle_share_and_converge_as_vms_end(make_ce, wrapper, local_cloud):
    local_cloud.compute.set_quota(instances=8, cores=-1, ram=-1)
    belle = make_ce(ce_name="belle.local.test", InstallationName="Belle2DIRAC", QuotaWeight=3,
                    OthersQuotaWeight=1, ListingCacheSeconds=0)
    t2k = make_ce(ce_name="t2k.local.test", InstallationName="T2KDIRAC", QuotaWeight=1,
                  OthersQuotaWeight=3, ListingCacheSeconds=0)

    assert slots(belle) == (6, "QuotaWeight")  # its 3/4 at once
    assert belle.submitJob(wrapper, "", 6)["OK"]
    assert slots(belle)[0] == 2  # t2k left its 2 free for a cycle: lent
    assert belle.submitJob(wrapper, "", 2)["OK"]
    assert slots(t2k)[0] == 0  # full: nothing is killed for t2k

    belle_vms = [s.name for s in live_servers(local_cloud) if s.metadata["jdirac-installation"] == "Belle2DIRAC"]
    end_naturally(local_cloud, belle_vms[:2])
    assert slots(belle)[0] == 0  # at its 6 of 8: it does not replace the ended ones
    assert slots(t2k)[0] == 2  # its own share, at once
    assert t2k.submitJob(wrapper, "", 2)["OK"]
    end_naturally(local_cloud, belle_vms[2:3])
    assert slots(t2k)[0] == 0  # at its share, and the slot was free for no whole cycle: not lent
    assert slots(belle)[0] == 1  # below its 6: replaces at once


def test_quota_share_stays_a_hard_cap_and_bad_weights_name_the_option(make_ce, local_cloud, tmp_path):
    from ce_testkit import ce_parameters, write_cloud_auth
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    local_cloud.compute.set_quota(instances=8, cores=-1, ram=-1)
    capped = make_ce(InstallationName="Belle2DIRAC", QuotaWeight=3, QuotaShare="25%", ListingCacheSeconds=0)
    assert slots(capped) == (2, "QuotaShare")
    auth = write_cloud_auth(tmp_path / "cloud.auth", "u", "p")
    for option, value in (("QuotaWeight", "-1"), ("OthersQuotaWeight", "lots")):
        result = ComputingElementFactory().getCE(
            ceType="Cloud", ceName="bad.local.test", ceParametersDict=ce_parameters(local_cloud, auth, **{option: value})
        )
        assert not result["OK"] and f"CS option {option}" in result["Message"]


def test_each_named_installation_is_weighed_apart(make_ce, wrapper, local_cloud):
    """Belle II 3, T2K 2, GridPP 1 on 12 instances: Belle II's share is 6 (one weight for all
    others, as OthersQuotaWeight alone gives, would make it 9, all 8 free slots); the VMs are told
    apart by their installation tag in one listing of the project."""
    local_cloud.compute.set_quota(instances=12, cores=-1, ram=-1)
    belle = make_ce(ce_name="belle.local.test", InstallationName="Belle2DIRAC", QuotaWeight=3,
                    InstallationQuotaWeights="T2KDIRAC:2, GridPPDIRAC:1", ListingCacheSeconds=0)
    t2k = make_ce(ce_name="t2k.local.test", InstallationName="T2KDIRAC", ListingCacheSeconds=0)
    gridpp = make_ce(ce_name="gridpp.local.test", InstallationName="GridPPDIRAC", ListingCacheSeconds=0)
    assert belle.cloudConfig.others_quota_weight == 0  # nothing else on the project has a share
    assert t2k.submitJob(wrapper, "", 3)["OK"] and gridpp.submitJob(wrapper, "", 1)["OK"]

    assert slots(belle) == (6, "QuotaWeight")
    assert belle.submitJob(wrapper, "", 6)["OK"]
    # the 2 slots Belle II left free a whole cycle, while T2K and GridPP (under their 4 and 2)
    # started nothing, are lent
    assert slots(belle)[0] == 2
    assert t2k.submitJob(wrapper, "", 1)["OK"]  # T2K starts again, under its share of 4
    assert slots(belle) == (0, "QuotaWeight")  # it wants its share: nothing lent


def test_installation_weights_name_the_option(local_cloud, tmp_path):
    from ce_testkit import ce_parameters, write_cloud_auth
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    auth = write_cloud_auth(tmp_path / "cloud.auth", "u", "p")
    for options, problem in (
        ({"QuotaWeight": 3, "InstallationQuotaWeights": "T2KDIRAC"}, "is not installation:weight"),
        ({"QuotaWeight": 3, "InstallationQuotaWeights": "T2KDIRAC:0"}, "must be a positive number"),
        ({"QuotaWeight": 3, "InstallationQuotaWeights": "T2KDIRAC:x"}, "is not a number"),
        ({"QuotaWeight": 3, "InstallationQuotaWeights": "T2KDIRAC:1, T2KDIRAC:2"}, "given twice"),
        ({"QuotaWeight": 3, "InstallationQuotaWeights": "JenniferTest:1"}, "own installation"),
        ({"InstallationQuotaWeights": "T2KDIRAC:1"}, "needs this CE's QuotaWeight"),
    ):
        result = ComputingElementFactory().getCE(
            ceType="Cloud", ceName="bad.local.test", ceParametersDict=ce_parameters(local_cloud, auth, **options)
        )
        assert not result["OK"], options
        assert "CS option InstallationQuotaWeights" in result["Message"] and problem in result["Message"], result


def test_the_readme_two_vo_example_gives_each_its_weight():
    """README's two-VOs example, each column parsed as its CE would: 3/4 and 1/4 of a busy project."""
    import re
    from pathlib import Path

    from JenniferDIRAC.Resources.Cloud.capacity import Community, lending_slots
    from JenniferDIRAC.Resources.Cloud.quotaweights import parse_installation_weights

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("### Flavors, zones and images that change: two VOs on one project", 1)[1]
    (belle_weight, t2k_weight), = re.findall(r"^  QuotaWeight = (\S+) +QuotaWeight = (\S+)$", example, re.M)
    (belle_others, t2k_others), = re.findall(
        r"^  InstallationQuotaWeights = (\S+) +InstallationQuotaWeights = (\S+)$", example, re.M)
    columns = {
        "Belle2DIRAC": (float(belle_weight), parse_installation_weights(belle_others, "Belle2DIRAC")),
        "T2KDIRAC": (float(t2k_weight), parse_installation_weights(t2k_others, "T2KDIRAC")),
    }
    for me, (weight, others) in columns.items():
        (other, other_weight), = others.items()
        assert columns[other][0] == other_weight  # both installations agree on the weights
        share = {"Belle2DIRAC": 30, "T2KDIRAC": 10}  # of 40 instances, both busy
        communities = [Community(me, weight, 0), Community(other, other_weight, share[other], started=1)]
        assert lending_slots(40, me, communities, 0) == share[me]


def test_a_cloud_that_cannot_list_every_installation_weighs_the_named_ones_as_others():
    """A backend without list_project_vms (every supported cloud has one now) weighs the named
    installations with OthersQuotaWeight."""
    from JenniferDIRAC.Resources.Cloud.capacity import cloud_capacity
    from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
    from JenniferDIRAC.Resources.Cloud.model import Flavor, Quota
    from JenniferDIRAC.Resources.Computing.CloudCE.lending import QuotaLending

    config = CloudCEConfig.parse("ce", {
        "CloudType": "OPENSTACK", "Instance_Image": "i", "Instance_Flavor": "f", "InstallationName": "Belle2DIRAC",
        "QuotaWeight": "3", "InstallationQuotaWeights": "T2KDIRAC:2, GridPPDIRAC:1",
    })
    flavor, quota = Flavor("f", "f", 1, 1024), Quota(max_instances=12, used_instances=4)
    free = cloud_capacity([], quota, flavor)
    named = QuotaLending().apply(config, quota, [], flavor, free, {"T2KDIRAC": 3, "GridPPDIRAC": 1})
    unknown = QuotaLending().apply(config, quota, [], flavor, free, None)
    assert (named.slots, unknown.slots) == (6, 6)  # 3 of 6 either way: the weights are the same
    alone = QuotaLending().apply(config, quota, [], flavor, free, {"T2KDIRAC": 4})
    assert alone.slots == 6  # GridPP has nothing: its share is not lent in the first cycle


def test_the_project_listing_by_installation_is_shared_by_the_ces_of_the_process(make_ce, local_cloud):
    from JenniferDIRAC.Resources.Cloud.sharedlisting import invalidate_all
    from JenniferDIRAC.Resources.Computing.CloudCE.lending import forget_usage

    listing = ("compute", "GET", "/v2.1/servers/detail")
    local_cloud.compute.set_quota(instances=12, cores=-1, ram=-1)
    ces = [make_ce(ce_name=f"belle{i}.local.test", InstallationName="Belle2DIRAC", QuotaWeight=3,
                   InstallationQuotaWeights="T2KDIRAC:1", ListingCacheSeconds=60) for i in range(2)]
    for ce in ces:  # authenticated and resolved, as the SiteDirector's CEs are; then a new cycle
        assert ce.getCEStatus()["OK"]
    invalidate_all()
    forget_usage()
    local_cloud.counters.reset()
    for ce in ces:
        assert ce.getCEStatus()["OK"]
    # one listing of this installation's VMs and one of the project's, for both CEs
    assert local_cloud.counters.get(*listing) == 2


def test_others_keep_their_weight_when_set_beside_named_installations():
    from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig

    base = {"CloudType": "OPENSTACK", "Instance_Image": "i", "Instance_Flavor": "f", "InstallationName": "Belle2DIRAC",
            "QuotaWeight": "3"}
    named = CloudCEConfig.parse("ce", {**base, "InstallationQuotaWeights": "T2KDIRAC:1", "OthersQuotaWeight": "2"})
    assert (named.installation_quota_weights, named.others_quota_weight) == ({"T2KDIRAC": 1.0}, 2.0)
    assert CloudCEConfig.parse("ce", base).others_quota_weight == 1.0  # the option alone, as before
