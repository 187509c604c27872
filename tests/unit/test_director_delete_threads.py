"""Bulk deletions run MaxDeleteThreads at once: more than the old 8, never more than asked."""

from __future__ import annotations

import threading

from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend
from JenniferDIRAC.Resources.Cloud.backend import delete_each


def concurrency_of(vm_count: int, max_threads: int, meet: int) -> tuple[int, dict[str, str]]:
    """(most deletes seen running at once, errors); each delete waits (with a deadline) until
    `meet` of them are running together."""
    barrier = threading.Barrier(meet)
    lock = threading.Lock()
    running = peak = 0

    def delete_one(vm_id: str) -> str | None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            barrier.wait(timeout=20)
        except threading.BrokenBarrierError:
            return "fewer deletes at once than expected"
        finally:
            with lock:
                running -= 1
        return None

    errors = delete_each([f"vm-{i}" for i in range(vm_count)], delete_one, max_threads)
    return peak, errors


def test_sixteen_deletes_run_at_once_when_allowed():
    peak, errors = concurrency_of(32, 16, meet=16)
    assert errors == {}
    assert peak == 16


def test_never_more_than_max_threads_at_once():
    peak, errors = concurrency_of(12, 4, meet=4)
    assert errors == {}
    assert peak == 4


def test_openstack_backend_pools_a_connection_per_delete_thread():
    auth = v3.Password(auth_url="https://keystone.invalid/v3", username="u", password="p",
                       project_name="p", user_domain_name="Default", project_domain_name="Default")
    backend = OpenStackBackend(auth=auth, max_delete_threads=24)
    assert backend.max_delete_threads == 24
    assert backend.session.session.get_adapter("https://nova.invalid/")._pool_maxsize == 24


class CountingBackend:
    """A backend whose deletes meet at the state's barrier (the edge of this unit test)."""

    def __init__(self, state: dict, fail: str = ""):
        self.state, self.fail = state, fail

    def delete_vms(self, vm_ids):
        with self.state["lock"]:
            self.state["running"] += 1
            self.state["peak"] = max(self.state["peak"], self.state["running"])
        try:
            self.state["barrier"].wait(timeout=20)
        except threading.BrokenBarrierError:
            pass
        finally:
            with self.state["lock"]:
                self.state["running"] -= 1
        if vm_ids == [self.fail]:
            raise RuntimeError("cloud said no")
        return {}


def test_the_ces_of_a_project_share_its_delete_threads():
    from JenniferDIRAC.WorkloadManagementSystem.Director.deletions import ProjectDeletions

    state = {"lock": threading.Lock(), "running": 0, "peak": 0, "barrier": threading.Barrier(3)}
    deletions = ProjectDeletions(3)
    backends = [CountingBackend(state, fail="a-2"), CountingBackend(state)]
    results = {}

    def one_ce(index):  # two CEs deleting at once, 6 VMs each: 4 rounds of 3 at the barrier
        prefix = "ab"[index]
        results[prefix] = deletions.delete(backends[index], [f"{prefix}-{i}" for i in range(6)])

    threads = [threading.Thread(target=one_ce, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert state["peak"] == 3  # never more than the project's bound, both CEs together
    assert results == {"a": {"a-2": "cloud said no"}, "b": {}}  # one VM's failure is its own
    assert not state["barrier"].broken  # every round met: 3 at once each time
    deletions.resize(1)
    state.update(peak=0, barrier=threading.Barrier(1))
    assert deletions.delete(CountingBackend(state), ["c-0", "c-1", "c-2"]) == {} and state["peak"] == 1
    deletions.close()
