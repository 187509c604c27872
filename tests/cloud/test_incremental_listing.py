"""Incremental monitoring of an OpenStack project (Nova's changes-since) against LocalCloud over
real HTTP: the merged view always equals a full listing taken at the same moment."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from JenniferDIRAC.Resources.Cloud.errors import CloudError
from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.sharedlisting import CHANGES_MARGIN_SECONDS, IncrementalView

from test_openstack_backend import password_backend

LIST = ("compute", "GET", "/v2.1/servers/detail")
BRIEF = ("compute", "GET", "/v2.1/servers")
STATES = ["ACTIVE", "SHUTOFF", "ERROR", "BUILD"]


@pytest.fixture
def backend(local_cloud):
    backend = password_backend(local_cloud)
    yield backend
    backend.close()


def listed(vms):
    return {vm.id: (vm.name, vm.state, vm.metadata.get("jdirac_ce", ""), vm.fault) for vm in vms}


class Fleet:
    """Servers of one installation (and a stranger's) seeded straight into LocalCloud."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.installation = f"inst-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []

    def create(self, ce: int, installation: str | None = None, age: float | None = None) -> str:
        owner = OwnerTags(installation=installation or self.installation, ce=f"ce{ce}.test")
        created = self.cloud.clock.now() - age if age is not None else None
        server = self.cloud.compute.add_server(f"jdirac-{uuid.uuid4().hex}", self.cloud.project_id,
                                               metadata=owner.to_metadata(), created=created)
        if created is not None:
            server.updated = created  # seeded as last changed then
        self.ids.append(server.id)
        return server.id

    def pick(self, index: int) -> str | None:
        live = [i for i in self.ids if i in self.cloud.compute.servers]
        return live[index % len(live)] if live else None


OPS = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 2)),
    st.tuples(st.just("foreign"), st.integers(0, 2)),
    st.tuples(st.just("state"), st.integers(0, 50), st.sampled_from(STATES)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("own delete"), st.integers(0, 50), st.integers(1, 3)),
    st.tuples(st.just("finish")),
    st.tuples(st.just("fault"), st.sampled_from([503, 500]), st.sampled_from([LIST[2], BRIEF[2]])),
    st.tuples(st.just("advance"), st.floats(0, 3 * CHANGES_MARGIN_SECONDS)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(OPS, min_size=1, max_size=25), deleted_apart_after=st.sampled_from([1, 2, 10**9]))
def test_incremental_view_equals_a_full_listing_after_any_sequence(local_cloud, backend, steps, deleted_apart_after):
    """Deletions by others and by this process (``view.deleted``); with `deleted_apart_after`
    1 or 2 the refreshes after this process's deletions ask for the deleted servers apart."""
    fleet = Fleet(local_cloud)
    for _ in range(5):
        fleet.create(0)
    new_view = lambda: IncrementalView(deleted_apart_after=deleted_apart_after)  # noqa: E731
    view = new_view()
    assert listed(view.refresh(backend, fleet.installation)) == listed(
        backend.list_installation_vms(fleet.installation))
    for step in steps:
        kind, args = step[0], step[1:]
        if kind == "create":
            fleet.create(args[0])
        elif kind == "foreign":
            fleet.create(args[0], installation="someone-else")
        elif kind == "state" and fleet.pick(args[0]):
            local_cloud.compute.set_state(fleet.pick(args[0]), args[1],
                                          fault="No valid host" if args[1] == "ERROR" else None)
        elif kind == "delete" and fleet.pick(args[0]):
            local_cloud.compute.delete_server(None, fleet.pick(args[0]))
        elif kind == "own delete" and fleet.pick(args[0]):
            ids = list({fleet.pick(args[0] + i) for i in range(args[1])})
            assert backend.delete_vms(ids) == {}
            view.deleted(len(ids))
        elif kind == "finish":
            local_cloud.compute.finish_deletions()
        elif kind == "advance":
            local_cloud.clock.advance(args[0])
        elif kind == "restart":
            view = new_view()
        elif kind == "fault":
            local_cloud.faults.http_error(args[0], service="compute", method="GET", path=args[1], times=1)
            try:
                view.refresh(backend, fleet.installation)
            except CloudError:
                pass
            else:  # the brief listing is asked only by a refresh after this process's deletions
                assert args[1] == BRIEF[2], steps
            local_cloud.faults.clear()  # the rule, if it was not used
        merged = listed(view.refresh(backend, fleet.installation))
        assert merged == listed(backend.list_installation_vms(fleet.installation)), steps


def test_after_one_full_listing_a_refresh_returns_only_what_changed(local_cloud, backend):
    fleet = Fleet(local_cloud)
    ids = [fleet.create(i % 3, age=600 + 10 * i) for i in range(40)]  # last changed long ago, apart
    view = IncrementalView()
    returned = []
    asked = backend.list_installation_changes

    def spy(installation, since, deleted_apart=False):
        changes = asked(installation, since, deleted_apart=deleted_apart)
        returned.append(len(changes.vms) + len(changes.gone))
        return changes

    backend.list_installation_changes = spy
    assert len(view.refresh(backend, fleet.installation)) == 40
    local_cloud.compute.set_state(ids[0], "SHUTOFF")
    local_cloud.compute.delete_server(None, ids[1])
    local_cloud.compute.finish_deletions()
    fleet.create(0)
    local_cloud.counters.reset()

    vms = view.refresh(backend, fleet.installation)

    assert local_cloud.counters.get(*LIST) == 1
    assert returned == [3]  # the changed, the deleted and the new server: not the 40
    assert listed(vms) == listed(backend.list_installation_vms(fleet.installation))
    assert (view.full_listings, view.incremental_listings) == (1, 1)


def test_a_failed_refresh_and_the_resync_period_force_a_full_listing(local_cloud, backend):
    fleet = Fleet(local_cloud)
    fleet.create(0)
    now = [0.0]
    view = IncrementalView(full_resync_seconds=60, clock=lambda: now[0])
    view.refresh(backend, fleet.installation)
    view.refresh(backend, fleet.installation)
    assert (view.full_listings, view.incremental_listings) == (1, 1)
    local_cloud.faults.http_error(503, service="compute", method="GET", path="/v2.1/servers/detail", times=1)
    with pytest.raises(CloudError):
        view.refresh(backend, fleet.installation)
    view.refresh(backend, fleet.installation)
    assert (view.full_listings, view.incremental_listings) == (2, 1)  # what was missed is unknown
    now[0] = 60.0
    view.refresh(backend, fleet.installation)
    assert view.full_listings == 3


def test_after_this_process_deleted_enough_servers_a_refresh_names_the_deleted_by_id_only(local_cloud, backend):
    fleet = Fleet(local_cloud)
    ids = [fleet.create(i % 3, age=600 + 10 * i) for i in range(40)]
    view = IncrementalView(deleted_apart_after=5)
    view.refresh(backend, fleet.installation)
    assert backend.delete_vms(ids[:4]) == {}
    view.deleted(4)
    local_cloud.compute.finish_deletions()
    local_cloud.counters.reset()
    view.refresh(backend, fleet.installation)  # 4 deleted: under the threshold, one request
    assert local_cloud.counters.snapshot() == {LIST: 1}
    assert backend.delete_vms(ids[4:10]) == {}
    view.deleted(6)
    local_cloud.compute.finish_deletions()
    local_cloud.compute.set_state(ids[10], "SHUTOFF")
    local_cloud.counters.reset()

    vms = view.refresh(backend, fleet.installation)

    assert local_cloud.counters.snapshot() == {BRIEF: 1, LIST: 1}
    detailed = local_cloud.counters.bytes(*LIST)
    assert detailed < 3000  # the one server that changed state, not the six deleted ones as well
    assert listed(vms) == listed(backend.list_installation_vms(fleet.installation))
    assert {vm.id for vm in vms}.isdisjoint(ids[:10])
    local_cloud.counters.reset()
    view.refresh(backend, fleet.installation)  # nothing deleted since: one request again
    assert local_cloud.counters.snapshot() == {LIST: 1}
