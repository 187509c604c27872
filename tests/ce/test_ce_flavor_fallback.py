"""Flavors and zones that fall back: the CE against LocalCloud whose scheduler has no host for a
flavor (or a zone) answers like Nova, with an ERROR VM after the 202 ("No valid host")."""

from __future__ import annotations

import pytest

from JenniferDIRAC.Resources.Cloud import placement
from JenniferLocalCloud.faults import NO_VALID_HOST

from ce_testkit import live_servers, user_data_text
from cloudconfig_testkit import pilot_environment


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(placement, "MEMORY", placement.CapacityMemory(clock))
    return clock


def landed(cloud):
    """{VM name: (flavor, zone, state, cores the pilot is told)} of the live VMs."""
    return {
        s.name: (s.flavor.name, s.availability_zone, s.status,
                 pilot_environment(user_data_text(s)).get("DIRAC_NUMBER_OF_PROCESSORS"))
        for s in live_servers(cloud)
    }


def test_no_valid_host_moves_the_next_cycle_to_the_next_flavor(make_ce, wrapper, local_cloud, clock):
    local_cloud.compute.set_quota(cores=12, ram=-1, instances=20)
    local_cloud.faults.no_capacity(flavor="m1.large")
    ce = make_ce(Instance_Flavor="name:m1.large, name:m1.medium", CapacityCacheSeconds=600, ListingCacheSeconds=0)
    assert ce.available()["Value"] == 3  # 12 cores / m1.large's 4

    first = ce.submitJob(wrapper, "", 1)
    assert first["OK"], first.get("Message")  # Nova accepts (202): the VM goes to ERROR later
    (vm,) = landed(local_cloud).values()
    assert vm == ("m1.large", "nova", "ERROR", "4")
    (server,) = live_servers(local_cloud)
    assert server.fault.code == 500 and server.fault.message == NO_VALID_HOST

    # the next cycle (a new listing: ListingCacheSeconds=0 here) reads the ERROR as "no capacity for m1.large": m1.medium, counted at 2 cores
    # (12 - the ERROR VM's 4 = 8 cores left: 4 VMs), and no backoff (the CE keeps its slots)
    status = ce.available()
    assert status["OK"] and status["Value"] == 4, {k: status.get(k) for k in ("CloudSlots", "CloudSlotsLimitedBy", "WaitingJobs")}
    second = ce.submitJob(wrapper, "", 2)
    assert second["OK"], second.get("Message")
    new = {n: v for n, v in landed(local_cloud).items() if v[0] == "m1.medium"}
    assert sorted(v[:2] + (v[3],) for v in new.values()) == [("m1.medium", "nova", "2")] * 2

    # capacity comes back: after CapacityCacheSeconds the preferred flavor is tried again
    local_cloud.faults.capacity_back(flavor="m1.large")
    clock.now += 601
    before = set(landed(local_cloud))
    third = ce.submitJob(wrapper, "", 1)
    assert third["OK"], third.get("Message")
    (back,) = [v for n, v in landed(local_cloud).items() if n not in before]
    assert back[0] == "m1.large" and back[2] != "ERROR" and back[3] == "4"


def test_zones_fall_back_before_flavors_and_all_full_means_no_slots(make_ce, wrapper, local_cloud, clock):
    local_cloud.compute.add_zone("az2")
    local_cloud.faults.no_capacity(flavor="m1.large", zone="nova")
    ce = make_ce(Instance_Flavor="name:m1.large, name:m1.small", Instance_AvailabilityZone="nova, az2",
                 ListingCacheSeconds=0)
    assert ce.submitJob(wrapper, "", 1)["OK"]
    ce.available()
    assert ce.submitJob(wrapper, "", 1)["OK"]
    placed = sorted(v[:3] for v in landed(local_cloud).values())
    assert placed == [("m1.large", "az2", "BUILD"), ("m1.large", "nova", "ERROR")] or \
        placed == [("m1.large", "az2", "ACTIVE"), ("m1.large", "nova", "ERROR")], placed

    local_cloud.faults.no_capacity()  # no host anywhere: each option learns it once
    for _ in range(3):
        ce.available()
        ce.submitJob(wrapper, "", 1)
    status = ce.available()
    assert status["Value"] == 0, status
    assert status["CEInfoDict"]["CloudSlotsLimitedBy"] == "no capacity for any flavor/zone"
    assert sorted({v[:2] for v in landed(local_cloud).values() if v[2] == "ERROR"}) == [
        ("m1.large", "az2"), ("m1.large", "nova"), ("m1.small", "az2"), ("m1.small", "nova")]


def test_a_refused_create_moves_the_same_vms_to_the_next_flavor_at_once(make_ce, wrapper, local_cloud, clock):
    """EC2 and Azure refuse the create itself (InsufficientInstanceCapacity): the edge of this
    test makes the real backend refuse m1.large the same way; m1.small gets the same VMs."""
    from JenniferDIRAC.Resources.Cloud.errors import CapacityExhausted

    ce = make_ce(Instance_Flavor="name:m1.large, name:m1.small")
    backend = ce._getBackend()
    large = backend.resolve_flavor("name:m1.large")
    real_create, refused = backend.create_vm, []

    def create_vm(spec):
        if spec.flavor_id == large.id:
            refused.append(spec.name)
            raise CapacityExhausted("InsufficientInstanceCapacity: no m1.large capacity")
        return real_create(spec)

    backend.create_vm = create_vm
    result = ce.submitJob(wrapper, "", 2)
    assert result["OK"], result.get("Message")
    vms = landed(local_cloud)
    assert sorted(vms) == sorted(refused)  # the same names, created once each
    assert sorted(v[0] + "/" + v[3] for v in vms.values()) == ["m1.small/1", "m1.small/1"]
    assert ce.available()["CEInfoDict"]["CloudSlotsLimitedBy"] != "backoff"
    assert ce.submitJob(wrapper, "", 1)["OK"] and len(refused) == 2  # m1.large skipped while cached
