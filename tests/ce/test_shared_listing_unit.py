"""SharedValue / Snapshot (Resources/Cloud/sharedlisting.py): TTL, single flight, invalidation,
failures, with a controllable clock and fetch functions standing in for the cloud."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from waiting import wait_until

from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudUnreachable
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.sharedlisting import SharedValue, Snapshot

DEADLINE_S = 10.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Fetch:
    """Counts calls; returns 1, 2, 3...; can be held until released, or fail."""

    def __init__(self, error: Exception | None = None, hold: bool = False):
        self.calls = 0
        self.error = error
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(DEADLINE_S)
        if self.error is not None:
            raise self.error
        return self.calls


def wait_for(condition, what):
    wait_until(condition, DEADLINE_S, what, interval=0.005)


def test_value_is_reused_within_max_age_and_fetched_again_after():
    clock, fetch = Clock(), Fetch()
    shared = SharedValue(clock)
    assert shared.get(fetch, 10) == 1
    clock.now += 10
    assert shared.get(fetch, 10) == 1 and fetch.calls == 1
    clock.now += 0.5
    assert shared.get(fetch, 10) == 2 and fetch.calls == 2


def test_max_age_zero_always_fetches_and_keeps_nothing():
    clock, fetch = Clock(), Fetch()
    shared = SharedValue(clock)
    assert [shared.get(fetch, 0) for _ in range(3)] == [1, 2, 3]
    assert shared.get(fetch, 10) == 4  # nothing was kept by the max_age 0 calls


def test_invalidate_forces_a_new_fetch():
    clock, fetch = Clock(), Fetch()
    shared = SharedValue(clock)
    shared.get(fetch, 10)
    shared.invalidate()
    assert shared.get(fetch, 10) == 2


def test_failed_fetch_is_not_kept():
    clock, failing = Clock(), Fetch(error=CloudUnreachable("503"))
    shared = SharedValue(clock)
    with pytest.raises(CloudUnreachable):
        shared.get(failing, 10)
    fetch = Fetch()
    assert shared.get(fetch, 10) == 1 and fetch.calls == 1


def test_concurrent_callers_share_one_fetch():
    shared, fetch = SharedValue(Clock()), Fetch(hold=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(shared.get, fetch, 10)
        assert fetch.started.wait(DEADLINE_S)
        others = [pool.submit(shared.get, fetch, 10) for _ in range(7)]
        wait_for(lambda: shared.waiting() == 7, "7 callers waiting on the fetch under way")
        fetch.release.set()
        results = [leader.result(DEADLINE_S)] + [f.result(DEADLINE_S) for f in others]
    assert results == [1] * 8 and fetch.calls == 1


def test_waiters_get_the_error_of_the_shared_fetch_and_it_is_not_kept():
    shared, failing = SharedValue(Clock()), Fetch(error=CloudUnreachable("503 from compute"), hold=True)
    with ThreadPoolExecutor(max_workers=3) as pool:
        leader = pool.submit(shared.get, failing, 10)
        assert failing.started.wait(DEADLINE_S)
        others = [pool.submit(shared.get, failing, 10) for _ in range(2)]
        wait_for(lambda: shared.waiting() == 2, "2 callers waiting")
        failing.release.set()
        for future in [leader, *others]:
            with pytest.raises(CloudUnreachable, match="503 from compute"):
                future.result(DEADLINE_S)
    assert failing.calls == 1
    assert shared.get(Fetch(), 10) == 1  # fetched again, not an empty or failed value


def test_fetch_under_way_during_an_invalidation_is_neither_kept_nor_joined():
    """A listing that may predate a create must not serve anyone who calls after the create."""
    shared, old = SharedValue(Clock()), Fetch(hold=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        before = pool.submit(shared.get, old, 10)
        assert old.started.wait(DEADLINE_S)
        shared.invalidate()  # a VM was created while the listing ran
        new = Fetch()
        assert shared.get(new, 10) == 1 and new.calls == 1  # did not wait for the old listing
        old.release.set()
        assert before.result(DEADLINE_S) == 1
    assert shared.get(Fetch(), 10) == 1 and new.calls == 1  # the new listing is kept, not the old


def test_auth_failure_of_another_ces_fetch_makes_a_waiter_fetch_with_its_own_credentials():
    shared = SharedValue(Clock())
    refused = Fetch(error=CloudAuthError("401 for ce A"), hold=True)
    own = Fetch()
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(shared.get, refused, 10, "backend A")
        assert refused.started.wait(DEADLINE_S)
        b = pool.submit(shared.get, own, 10, "backend B")
        wait_for(lambda: shared.waiting() == 1, "B waiting on A's fetch")
        refused.release.set()
        with pytest.raises(CloudAuthError):
            a.result(DEADLINE_S)
        assert b.result(DEADLINE_S) == 1
    assert own.calls == 1


def test_outage_seen_by_another_ces_fetch_is_shared_not_retried():
    shared = SharedValue(Clock())
    down = Fetch(error=CloudUnreachable("timeout"), hold=True)
    other = Fetch()
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(shared.get, down, 10, "backend A")
        assert down.started.wait(DEADLINE_S)
        b = pool.submit(shared.get, other, 10, "backend B")
        wait_for(lambda: shared.waiting() == 1, "B waiting on A's fetch")
        down.release.set()
        for future in (a, b):
            with pytest.raises(CloudUnreachable):
                future.result(DEADLINE_S)
    assert other.calls == 0


def test_snapshot_groups_vms_by_ce_once_and_ignores_foreign_ones():
    def vm(name, ce):
        metadata = OwnerTags("inst", ce).to_metadata() if ce else {}
        return VM(id=name, name=name, state=VMState.ACTIVE, metadata=metadata)

    snapshot = Snapshot.of([vm("a", "ce1"), vm("b", "ce2"), vm("c", "ce1"), vm("d", None)])
    assert sorted(snapshot.vms_of("ce1")) == ["a", "c"]
    assert list(snapshot.vms_of("ce2")) == ["b"]
    assert dict(snapshot.vms_of("nobody")) == {}
    assert snapshot.vms_of("ce1") is snapshot.vms_of("ce1")  # filtered once, not per call
    with pytest.raises(TypeError):
        snapshot.vms_of("ce1")["x"] = vm("x", "ce1")  # shared between CEs: read only


def test_waiters_get_errors_that_cannot_be_rebuilt_from_their_arguments():
    from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

    shared = SharedValue(Clock())
    failing = Fetch(error=ConfigurationError("Instance_Flavor", "no such flavor"), hold=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        leader = pool.submit(shared.get, failing, 10)
        assert failing.started.wait(DEADLINE_S)
        waiter = pool.submit(shared.get, failing, 10)
        wait_for(lambda: shared.waiting() == 1, "1 caller waiting")
        failing.release.set()
        for future in (leader, waiter):
            with pytest.raises(ConfigurationError, match="CS option Instance_Flavor: no such flavor"):
                future.result(DEADLINE_S)


def test_amend_changes_the_held_value_and_keeps_its_age():
    clock, fetch = Clock(), Fetch()
    shared = SharedValue(clock)
    assert shared.get(fetch, 10) == 1
    clock.now += 6
    shared.amend(lambda value: value + 100)
    assert shared.get(fetch, 10) == 101 and fetch.calls == 1
    clock.now += 5  # 11 s after the fetch: the amended value is as old as the listing it came from
    assert shared.get(fetch, 10) == 2 and fetch.calls == 2


def test_amend_with_nothing_held_holds_nothing():
    clock, fetch = Clock(), Fetch()
    shared = SharedValue(clock)
    shared.amend(lambda value: 100)
    assert shared.get(fetch, 10) == 1


def test_fetch_under_way_during_an_amend_is_not_kept():
    clock = Clock()
    shared, slow = SharedValue(clock), Fetch(hold=True)
    assert shared.get(Fetch(), 10) == 1
    clock.now += 11  # expired: the next caller fetches
    with ThreadPoolExecutor(max_workers=1) as pool:
        leader = pool.submit(shared.get, slow, 10)
        assert slow.started.wait(DEADLINE_S)
        shared.amend(lambda value: value + 100)  # this process changed something meanwhile
        slow.release.set()
        assert leader.result(DEADLINE_S) == 1  # its caller gets what it asked for
    later = Fetch()
    later.calls = 41
    assert shared.get(later, 10) == 42  # the fetch that may predate the change is not served


def test_snapshot_adds_created_vms_and_marks_deleted_ones():
    from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
    from JenniferDIRAC.Resources.Cloud.sharedlisting import Snapshot

    def vm(i, ce):
        return VM(id=f"id{i}", name=f"vm{i}", state=VMState.ACTIVE,
                  metadata=OwnerTags(installation="I", ce=ce).to_metadata())

    snapshot = Snapshot.of([vm(1, "a"), vm(2, "a"), vm(3, "b")])
    changed = snapshot.with_created([vm(4, "b"), vm(5, "c")]).with_deleting({"id1", "id3"})
    assert {ce: {n: v.state for n, v in changed.vms_of(ce).items()} for ce in "abc"} == {
        "a": {"vm1": VMState.DELETING, "vm2": VMState.ACTIVE},
        "b": {"vm3": VMState.DELETING, "vm4": VMState.ACTIVE},
        "c": {"vm5": VMState.ACTIVE},
    }
    assert snapshot.vms_of("a")["vm1"].state is VMState.ACTIVE  # the shared one is not changed
