"""A full flavor/zone is remembered in VMDB (VMCapacity) by the CE that saw the refusal and
skipped by the CEs of every other process: two CE instances, each with its own in-process
capacity memory (as the SiteDirector's and a command's would have), on real MariaDB and
LocalCloud."""

from __future__ import annotations

import pytest

from JenniferDIRAC.Resources.Cloud import placement
from JenniferDIRAC.Resources.Cloud.errors import CapacityExhausted
from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module


def test_rows_expire_keep_the_longest_memory_and_name_bad_fields(vmdb):
    db = vmdb.db
    assert db.setNoCapacity("cloud-a", "name:m1.large", "nova", 600, "No valid host")["OK"]
    assert db.setNoCapacity("cloud-a", "name:m1.large", "nova", 5, "shorter: ignored")["OK"]
    assert db.setNoCapacity("cloud-a", "name:m1.small", "", 0, "already over")["OK"]
    assert db.setNoCapacity("cloud-b", "name:m1.large", "nova", 600)["OK"]
    (row,) = db.getNoCapacity("cloud-a")["Value"]
    assert (row["flavor"], row["zone"], row["reason"]) == ("name:m1.large", "nova", "No valid host")
    assert 590 <= row["seconds"] <= 600
    assert db.getNoCapacity("cloud-c")["Value"] == []
    for args, problem in (
        (("", "f", "", 60), "'cloud' is required"),
        (("c" * 65, "f", "", 60), "cloud is longer than 64"),
        (("c", "f", "", 86401), "seconds must be between 0 and 86400"),
        (("c", "f", "", "soon"), "invalid literal"),
    ):
        result = db.setNoCapacity(*args)
        assert not result["OK"] and problem in result["Message"], (args, result)


@pytest.fixture
def shared_vmdb(vmdb, monkeypatch):
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    return vmdb.db


def a_process(monkeypatch):
    """A process of its own: an empty in-process capacity memory."""
    monkeypatch.setattr(placement, "MEMORY", placement.CapacityMemory())


def test_a_refusal_seen_by_one_process_is_skipped_by_the_others(shared_vmdb, make_ce, wrapper, local_cloud, monkeypatch):
    local_cloud.compute.set_quota(cores=8, ram=-1, instances=20)
    flavors = "name:m1.large, name:m1.small"
    a_process(monkeypatch)
    first = make_ce(ce_name="a.local.test", Instance_Flavor=flavors, ListingCacheSeconds=0, CapacityCacheSeconds=600)
    backend = first._getBackend()
    large = backend.resolve_flavor("name:m1.large")
    real_create = backend.create_vm

    def create_vm(spec):  # the edge: the cloud refuses m1.large itself, as EC2 does
        if spec.flavor_id == large.id:
            raise CapacityExhausted("InsufficientInstanceCapacity: no m1.large capacity")
        return real_create(spec)

    backend.create_vm = create_vm
    assert first.submitJob(wrapper, "", 1)["OK"]
    rows = shared_vmdb.getNoCapacity(first._placements.shared_key(first._placements.cloud_key(backend)))["Value"]
    assert [(r["flavor"], r["zone"]) for r in rows] == [("name:m1.large", "")]
    assert "InsufficientInstanceCapacity" in rows[0]["reason"]

    # another process: its memory is empty, its cloud would accept m1.large (nothing refuses it here)
    a_process(monkeypatch)
    second = make_ce(ce_name="b.local.test", Instance_Flavor=flavors, ListingCacheSeconds=0, CapacityCacheSeconds=600)
    status = second.available()
    assert status["OK"] and status["Value"] == 7, status  # 8 cores less the first VM's 1, in m1.small
    result = second.submitJob(wrapper, "", 1)
    assert result["OK"], result.get("Message")
    landed = {s.name: s.flavor.name for s in local_cloud.compute.servers.values() if s.status != "DELETED"}
    assert sorted(landed.values()) == ["m1.small", "m1.small"]

    # once the shared memory is gone (expired), a new process tries the preferred flavor again
    shared_vmdb._update("DELETE FROM VMCapacity")
    a_process(monkeypatch)
    third = make_ce(ce_name="c.local.test", Instance_Flavor=flavors, ListingCacheSeconds=0)
    assert third.submitJob(wrapper, "", 1)["OK"]
    landed = sorted(s.flavor.name for s in local_cloud.compute.servers.values() if s.status != "DELETED")
    assert landed == ["m1.large", "m1.small", "m1.small"]


def test_novas_no_valid_host_learnt_from_a_listing_is_shared_too(shared_vmdb, make_ce, wrapper, local_cloud, monkeypatch):
    """Nova accepts the create and fails the VM: the CE learns it from its next listing, and
    writes it for the other processes as well."""
    local_cloud.compute.set_quota(cores=12, ram=-1, instances=20)
    local_cloud.faults.no_capacity(flavor="m1.large")
    flavors = "name:m1.large, name:m1.medium"
    a_process(monkeypatch)
    first = make_ce(ce_name="a.local.test", Instance_Flavor=flavors, ListingCacheSeconds=0)
    assert first.submitJob(wrapper, "", 1)["OK"]  # 202, then ERROR "No valid host"
    assert first.available()["OK"]  # the next cycle's listing shows the ERROR VM
    key = first._placements.shared_key(first._placements.cloud_key(first._getBackend()))
    assert [r["flavor"] for r in shared_vmdb.getNoCapacity(key)["Value"]] == ["name:m1.large"]

    a_process(monkeypatch)
    local_cloud.faults.capacity_back(flavor="m1.large")  # the other process would not be refused
    second = make_ce(ce_name="b.local.test", Instance_Flavor=flavors, ListingCacheSeconds=0)
    assert second.submitJob(wrapper, "", 1)["OK"]
    landed = sorted((s.flavor.name, s.status) for s in local_cloud.compute.servers.values() if s.status != "DELETED")
    assert [flavor for flavor, status in landed if status != "ERROR"] == ["m1.medium"], landed
