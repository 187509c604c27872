"""The CE remembers where each VM it created was placed only while the VM builds (Nova answers
"No valid host" with an ERROR VM after the 202): a VM listed past BUILD is forgotten, so a CE
that creates VMs for ever does not remember every one of them."""

from __future__ import annotations

from JenniferDIRAC.Resources.Cloud.references import parse_reference

from ce_testkit import live_servers


def test_placements_of_vms_listed_past_build_are_forgotten(make_ce, wrapper, local_cloud):
    local_cloud.compute.build_seconds = 3600  # the VMs stay in BUILD until this test moves them
    ce = make_ce(ListingCacheSeconds=0)
    submitted = ce.submitJob(wrapper, "", 4)
    assert submitted["OK"], submitted.get("Message")
    names = [parse_reference(ref)[1] for ref in submitted["Value"]]
    placed_on = ce._placements.placed_on
    assert set(placed_on) == set(names)

    assert ce.available()["OK"]
    assert set(placed_on) == set(names)  # all still building: a "No valid host" may come

    ids = {s.name: s.id for s in live_servers(local_cloud)}
    local_cloud.compute.set_state(ids[names[0]], "ACTIVE")
    local_cloud.compute.set_state(ids[names[1]], "SHUTOFF")
    local_cloud.compute.set_state(ids[names[2]], "ERROR", fault="Build of instance aborted: disk full")
    assert ce.available()["OK"]
    assert set(placed_on) == {names[3]}
