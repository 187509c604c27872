"""Bulk deletions run MaxDeleteThreads at once: more than the old 8, never more than asked."""

from __future__ import annotations

import threading

from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend
from JenniferDIRAC.Resources.Cloud.backend import delete_each


def concurrency_of(vm_count: int, max_threads: int, meet: int) -> tuple[int, dict[str, str]]:
    """(most deletes seen running at once, errors); each delete but the first waits (with a
    deadline) until `meet` of them are running together."""
    barrier = threading.Barrier(meet)
    lock = threading.Lock()
    running = peak = 0
    first = True

    def delete_one(vm_id: str) -> str | None:
        nonlocal running, peak, first
        with lock:
            if first:  # delete_each sends the first alone (version discovery)
                first = False
                return None
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
    peak, errors = concurrency_of(1 + 32, 16, meet=16)
    assert errors == {}
    assert peak == 16


def test_never_more_than_max_threads_at_once():
    peak, errors = concurrency_of(1 + 12, 4, meet=4)
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

    def settle_discovery(self):
        pass

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


class DiscoveringBackend:
    """One CE's backend of a project whose backends share one discovery cache (share_discovery):
    the first to settle fetches the version document, the others find it."""

    def __init__(self, name, cache, events, deletions, refuse=False):
        self.name, self.cache, self.events, self.deletions, self.refuse = name, cache, events, deletions, refuse

    def settle_discovery(self):
        from JenniferDIRAC.Resources.Cloud.errors import CloudError

        self.events.append(("settle", self.name, self.deletions._discovery_lock.locked()))
        if self.refuse:
            raise CloudError("version document: 503")
        if "compute" not in self.cache:
            self.events.append(("fetch", self.name, True))
            self.cache["compute"] = "v2.1"

    def delete_vms(self, vm_ids):
        self.events.append(("delete", self.name, "compute" in self.cache))
        return {}


def test_a_projects_backends_settle_discovery_one_at_a_time_before_their_first_delete():
    from JenniferDIRAC.WorkloadManagementSystem.Director.deletions import ProjectDeletions

    deletions, cache, events = ProjectDeletions(8), {}, []
    backends = [DiscoveringBackend(f"ce{i}", cache, events, deletions) for i in range(3)]
    start = threading.Barrier(3)

    def one_ce(backend):  # the CEs' deletions start together, as CEsInParallel serves them
        start.wait(timeout=20)
        assert deletions.delete(backend, [f"{backend.name}-1", f"{backend.name}-2"]) == {}

    threads = [threading.Thread(target=one_ce, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len([e for e in events if e[0] == "fetch"]) == 1
    settles = [e for e in events if e[0] == "settle"]
    assert sorted(name for _, name, _ in settles) == ["ce0", "ce1", "ce2"]
    assert all(held for _, _, held in settles)  # one backend at a time
    deletes = [e for e in events if e[0] == "delete"]
    assert len(deletes) == 6 and all(known for _, _, known in deletes)  # none before the document
    events.clear()
    assert deletions.delete(backends[0], ["ce0-3"]) == {}
    assert events == [("delete", "ce0", True)]  # settled once per backend, not per cycle
    refused = DiscoveringBackend("ce3", {}, events, deletions, refuse=True)
    assert deletions.delete(refused, ["ce3-1"]) == {}  # a failed discovery leaves the DELETE to tell
    assert events[-1] == ("delete", "ce3", False)
    deletions.close()
