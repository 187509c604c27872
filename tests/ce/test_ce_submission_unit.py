"""Batch creation and capacity rules, against a small in-memory CloudBackend (unit edge).

The real-HTTP versions of these paths are in test_ce_localcloud.py."""

from __future__ import annotations

import itertools
import math
import threading

import pytest

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.capacity import cloud_capacity
from JenniferDIRAC.Resources.Cloud.errors import CloudError, CloudUnreachable, QuotaExceeded
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, OwnerTags, Quota, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.submission import create_vms

OWNER = OwnerTags(installation="inst", ce="ce")
FLAVOR = Flavor(id="f", name="m1.medium", vcpus=2, ram_mb=4096)


class MemoryCloud(CloudBackend):
    """Creates VMs in a dict. `plan` scripts what each create call does, in call order:
    "ok", "lost" (created, but the caller sees CloudUnreachable), "down" (not created,
    CloudUnreachable), "quota", "error" (created in ERROR), "bad" (CloudError)."""

    def __init__(self, plan=(), lookup_fails=0):
        self.vms: dict[str, VM] = {}
        self.plan = list(plan)
        self.lookup_fails = lookup_fails
        self.creates = 0
        self.late: list[VMSpec] = []
        self.deleted: list[str] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def _new(self, spec, state=VMState.BUILD):
        vm = VM(id=f"id-{next(self._ids)}", name=spec.name, state=state, metadata=dict(spec.metadata))
        self.vms[vm.id] = vm
        return vm

    def create_vm(self, spec):
        with self._lock:
            self.creates += 1
            step = self.plan.pop(0) if self.plan else "ok"
            if step == "ok":
                vm = self._new(spec)
                while self.late:
                    self._new(self.late.pop())
                return vm
            if step == "lost":
                self._new(spec)
                raise CloudUnreachable("timed out")
            if step == "late":  # accepted, but visible only after the next create
                self.late.append(spec)
                raise CloudUnreachable("timed out")
            if step == "down":
                raise CloudUnreachable("503")
            if step == "quota":
                raise QuotaExceeded("quota exceeded for instances")
            if step == "error":
                return self._new(spec, VMState.ERROR)
            raise CloudError("bad request")

    def find_vm_by_name(self, name, owner):
        with self._lock:
            if self.lookup_fails:
                self.lookup_fails -= 1
                raise CloudUnreachable("503 on lookup")
            return next((vm for vm in self.vms.values() if vm.name == name), None)

    def list_vms(self, owner):
        return list(self.vms.values())

    def delete_vms(self, vm_ids):
        with self._lock:
            for vm_id in vm_ids:
                self.vms.pop(vm_id, None)
                self.deleted.append(vm_id)
        return {}

    def console_log(self, vm_id):
        return ""

    def quota(self):
        return Quota()

    def resolve_image(self, ref):
        return ref

    def resolve_flavor(self, ref):
        return FLAVOR

    def resolve_networks(self, refs):
        return refs


def specs(n):
    return [VMSpec(name=f"jdirac-{i:032x}", image_id="i", flavor_id="f", user_data=b"", metadata={}) for i in range(n)]


def run(cloud, n, **options):
    return create_vms(cloud, specs(n), OWNER, max_threads=1, retry_delay=0, sleep=lambda s: None, **options)


def names(cloud):
    return sorted(vm.name for vm in cloud.vms.values())


def test_lost_create_is_found_by_name_not_created_twice():
    cloud = MemoryCloud(plan=["lost"])
    result = run(cloud, 1)
    assert [o.vm.name for o in result.created] == [specs(1)[0].name]
    assert cloud.creates == 1
    assert names(cloud) == [specs(1)[0].name]


def test_create_that_never_reached_the_cloud_is_retried_once():
    cloud = MemoryCloud(plan=["down"])
    result = run(cloud, 1)
    assert len(result.created) == 1 and cloud.creates == 2
    assert len(cloud.vms) == 1


def test_late_twin_of_a_recreated_vm_is_deleted():
    cloud = MemoryCloud(plan=["late"])
    result = run(cloud, 1)
    (outcome,) = result.created
    assert cloud.creates == 2 and outcome.recreated
    assert list(cloud.vms) == [outcome.vm.id]  # the twin that showed up late is gone
    assert len(cloud.deleted) == 1


def test_unanswerable_lookup_never_creates_blind():
    # create lost, then the lookup fails twice: no second create may happen before a lookup answers
    cloud = MemoryCloud(plan=["lost"], lookup_fails=2)
    result = run(cloud, 1, attempts=3)
    assert cloud.creates == 1
    assert len(result.created) == 1  # the final lookup found it


def test_error_at_creation_is_deleted_and_reported():
    cloud = MemoryCloud(plan=["ok", "error", "ok"])
    result = run(cloud, 3)
    assert len(result.created) == 2 and len(result.failed) == 1
    assert "ERROR" in result.failed[0].error
    assert len(cloud.vms) == 2 and len(cloud.deleted) == 1


def test_quota_stops_the_batch_and_is_not_retried():
    cloud = MemoryCloud(plan=["ok", "quota"])
    result = run(cloud, 5)
    assert len(result.created) == 1
    assert result.quota_exceeded
    assert cloud.creates == 2  # the three after the refusal were never sent
    assert all(o.quota_exceeded for o in result.failed)
    # those never sent say so, with the cloud's refusal that stopped them
    assert [o.error for o in result.failed] == ["quota exceeded for instances"] + [
        "not attempted: the project quota is full (quota exceeded for instances)"] * 3


class GarbledLookups(MemoryCloud):
    """Lookups (and the twin listing) die on a response cut short, as requests does."""

    def find_vm_by_name(self, name, owner):
        import requests

        raise requests.JSONDecodeError("Expecting value", '{"servers": [', 13)

    def list_vms(self, owner):
        raise ValueError("not JSON")


def test_a_failing_lookup_of_any_kind_loses_no_vm_of_the_batch():
    cloud = GarbledLookups(plan=["ok", "lost", "ok"])
    result = run(cloud, 3, attempts=2)
    assert [o.vm.name for o in result.created] == [specs(3)[0].name, specs(3)[2].name]
    (uncertain,) = result.failed
    assert uncertain.uncertain and "JSONDecodeError" in uncertain.error
    assert cloud.creates == 3  # never created blind again


def test_failures_carry_the_kind_of_the_error():
    from JenniferDIRAC.Resources.Cloud.errors import FailureKind

    result = run(MemoryCloud(plan=["bad", "error", "quota"]), 3, attempts=1)
    assert [o.kind for o in result.failed] == [FailureKind.CLOUD_FAULT, FailureKind.CLOUD_FAULT, FailureKind.QUOTA]


def test_client_error_is_not_retried():
    cloud = MemoryCloud(plan=["bad"])
    result = run(cloud, 1)
    assert not result.created and cloud.creates == 1
    assert result.failed[0].error == "bad request"


def test_concurrent_batch_creates_each_name_once():
    cloud = MemoryCloud(plan=["lost", "down", "ok", "lost"] * 5)
    result = create_vms(cloud, specs(20), OWNER, max_threads=8, retry_delay=0, sleep=lambda s: None)
    assert len(result.created) == 20
    assert names(cloud) == sorted(s.name for s in specs(20))


# --- capacity ------------------------------------------------------------------------------
def vm(state, i=0):
    return VM(id=str(i), name=f"v{i}", state=state)


def test_waiting_running_and_unlimited_quota():
    vms = [vm(VMState.BUILD, 1), vm(VMState.ACTIVE, 2), vm(VMState.ACTIVE, 3), vm(VMState.SHUTOFF, 4),
           vm(VMState.DELETING, 5)]
    capacity = cloud_capacity(vms, Quota(max_instances=-1, max_cores=-1, max_ram_mb=None), FLAVOR)
    assert (capacity.waiting, capacity.running, capacity.slots) == (1, 2, None)


def test_cores_and_ram_cost_by_flavor():
    quota = Quota(max_instances=100, used_instances=3, max_cores=10, used_cores=5, max_ram_mb=-1)
    assert cloud_capacity([], quota, FLAVOR).slots == 2  # (10 - 5) // 2
    assert Quota(max_ram_mb=10000, used_ram_mb=0).headroom(FLAVOR) == 2
    assert math.isinf(Quota().headroom(FLAVOR))


def test_quota_share_counts_only_this_ce():
    # project: 20 instances, 8 used (3 of them ours); share 50% -> 10 for us, 7 left
    own = [vm(VMState.ACTIVE, i) for i in range(3)]
    quota = Quota(max_instances=20, used_instances=8)
    capacity = cloud_capacity(own, quota, FLAVOR, quota_share=0.5)
    assert capacity.slots == 7 and capacity.limited_by == "QuotaShare"
    # the project is nearly full: its headroom wins over the share
    assert cloud_capacity(own, Quota(max_instances=20, used_instances=19), FLAVOR, quota_share=0.5).slots == 1


def test_max_starting_and_backoff():
    building = [vm(VMState.BUILD, i) for i in range(4)]
    assert cloud_capacity(building, Quota(), FLAVOR, max_starting=5).slots == 1
    assert cloud_capacity(building, Quota(), FLAVOR, max_starting=3).slots == 0
    capacity = cloud_capacity([], Quota(), FLAVOR, backoff_allowance=0)
    assert capacity.slots == 0 and capacity.limited_by == "backoff"


@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_share_never_exceeds_project_headroom(share):
    quota = Quota(max_instances=10, used_instances=10)
    assert cloud_capacity([], quota, FLAVOR, quota_share=share).slots == 0
