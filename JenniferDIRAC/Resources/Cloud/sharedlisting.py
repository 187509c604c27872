"""Short-lived cloud listings and quotas shared by every CE of one cloud project in a process.

A SiteDirector asks each of its CEs for ``getCEStatus`` and ``getJobStatus`` every cycle. CEs of
the same cloud project see the same servers: one listing of the installation's VMs serves all of
them for a few seconds (``ListingCacheSeconds``), each CE taking its own VMs from it (grouped
once per listing). The project is what the backend's ``listing_scope()`` says (OpenStack: auth
URL, the token's project id and the compute endpoint, which differs per region); a backend
without a scope gets a listing of its own CE only, still reused within the TTL.

Correctness rules:
- a create or delete made through this process updates the held listing (``created()``,
  ``deleted()``: the new VMs added, the deleted ones shown DELETING, as Nova lists them for a
  moment) instead of forgetting it; a listing started before the change is neither kept nor
  joined, so a VM just created is never missing. A change whose outcome is uncertain (a create
  that may or may not exist, a delete that failed) calls ``invalidate()``: the next caller lists;
- callers arriving while a listing is under way wait for it instead of fetching again
  (single flight); an invalidation in between makes later callers start a new one;
- a failed listing is not kept: its error goes to the callers that waited for it, the next
  call fetches again. A refused credential is one CE's problem: a CE that waited for another
  CE's listing and got a ``CloudAuthError`` fetches once with its own backend;
- age counts from the end of the listing (a listing of thousands of VMs takes seconds; the data
  is never older than the TTL plus the listing's own duration).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import weakref
from datetime import datetime, timedelta
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, TypeVar

from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, Quota, VMState

if TYPE_CHECKING:
    from JenniferDIRAC.Resources.Cloud.backend import CloudBackend

T = TypeVar("T")
_EMPTY: Mapping[str, VM] = MappingProxyType({})


class _FetchUnderWay(Generic[T]):
    """One fetch under way, and its outcome for the callers waiting on it."""

    def __init__(self, generation: int, fetcher: object) -> None:
        self.generation = generation
        self.fetcher = fetcher
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0


def _error_for_another_caller(error: BaseException) -> BaseException:
    """The shared fetch's error for one more caller (each raise sets its own traceback)."""
    try:
        return copy.copy(error)
    except Exception:  # noqa: BLE001 - an exception that cannot be rebuilt from its args
        return error


class SharedValue(Generic[T]):
    """A value fetched on demand and served for up to `max_age` seconds, one fetch at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._value: T | None = None
        self._fetched_at: float | None = None  # None: nothing valid held
        self._flight: _FetchUnderWay[T] | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def waiting(self) -> int:
        """How many callers wait for the fetch under way (0 if none is)."""
        with self._lock:
            return self._flight.waiters if self._flight is not None else 0

    def invalidate(self) -> None:
        """Forget the value; fetches already under way are neither kept nor joined."""
        with self._lock:
            self._generation += 1
            self._value, self._fetched_at = None, None

    def amend(self, change: Callable[[T], T]) -> None:
        """Apply a change this process made to the held value, which keeps its age; a fetch
        under way may have started before the change: it is neither kept nor joined."""
        with self._lock:
            self._generation += 1
            if self._fetched_at is not None:
                self._value = change(self._value)  # type: ignore[arg-type]

    def get(self, fetch: Callable[[], T], max_age: float, fetcher: object = None) -> T:
        """The held value if younger than `max_age`, else the outcome of one (shared) `fetch()`.
        `max_age` <= 0: always `fetch()`, nothing shared. `fetcher` identifies the caller's
        credentials (see the module documentation on CloudAuthError)."""
        if max_age <= 0:
            return fetch()
        own_retry_done = False
        while True:
            with self._lock:
                if self._fetched_at is not None and self._clock() - self._fetched_at <= max_age:
                    return self._value  # type: ignore[return-value]
                flight = self._flight
                lead = flight is None or flight.generation != self._generation
                if lead:
                    flight = self._flight = _FetchUnderWay(self._generation, fetcher)
                else:
                    flight.waiters += 1
            if lead:
                return self._fetch_for_all(flight, fetch)
            flight.done.wait()
            if flight.error is None:
                return flight.value  # type: ignore[return-value]
            refused_elsewhere = isinstance(flight.error, CloudAuthError) and flight.fetcher is not fetcher
            if refused_elsewhere and not own_retry_done:
                own_retry_done = True
                continue
            raise _error_for_another_caller(flight.error) from None

    def _fetch_for_all(self, flight: _FetchUnderWay[T], fetch: Callable[[], T]) -> T:
        """The first caller's fetch, whose outcome every caller waiting on `flight` gets."""
        try:
            value = fetch()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            with self._lock:
                if flight.generation == self._generation:
                    self._value, self._fetched_at = value, self._clock()
            return value
        finally:
            with self._lock:
                if self._flight is flight:
                    self._flight = None
            flight.done.set()


def _stands_for_name(current: VM | None, candidate: VM) -> VM:
    """Of two VMs listed under one name (a twin the cloud completed late), the one the CE
    reports: not being deleted, else the oldest, as the VMDirector keeps (VMLifecycle)."""
    if current is None:
        return candidate
    if (current.state is VMState.DELETING) != (candidate.state is VMState.DELETING):
        return candidate if current.state is VMState.DELETING else current
    def age(vm: VM) -> tuple:
        return (vm.created is None, vm.created.timestamp() if vm.created else 0.0, vm.id)
    return min(current, candidate, key=age)


@dataclass(frozen=True)
class Snapshot:
    """One listing of an installation's VMs in a project, grouped by CE once."""

    by_ce: Mapping[str, Mapping[str, VM]] = field(default_factory=dict)

    @classmethod
    def of(cls, vms: list[VM]) -> Snapshot:
        groups: dict[str, dict[str, VM]] = {}
        for vm in vms:
            owner = vm.owner
            if owner is not None:
                group = groups.setdefault(owner.ce, {})
                group[vm.name] = _stands_for_name(group.get(vm.name), vm)
        return cls({ce: MappingProxyType(group) for ce, group in groups.items()})

    def with_created(self, vms: list[VM]) -> Snapshot:
        """This listing with VMs just created added to their CE's group."""
        groups = {ce: dict(group) for ce, group in self.by_ce.items()}
        for vm in vms:
            owner = vm.owner
            if owner is not None:
                groups.setdefault(owner.ce, {})[vm.name] = vm
        return Snapshot({ce: MappingProxyType(group) for ce, group in groups.items()})

    def with_deleting(self, vm_ids: set[str]) -> Snapshot:
        """This listing with the VMs whose delete the cloud accepted shown DELETING."""
        if not vm_ids:
            return self
        groups = {}
        for ce, group in self.by_ce.items():
            if any(vm.id in vm_ids for vm in group.values()):
                group = MappingProxyType({
                    name: dataclasses.replace(vm, state=VMState.DELETING) if vm.id in vm_ids else vm
                    for name, vm in group.items()
                })
            groups[ce] = group
        return Snapshot(groups)

    def vms_of(self, ce: str) -> Mapping[str, VM]:
        """This CE's VMs by name (read only: the VM objects are shared between CEs)."""
        return self.by_ce.get(ce, _EMPTY)


#: Seconds before the newest change seen from which the next incremental listing asks: covers
#: Nova's whole-second ``updated`` and changes committed out of order.
CHANGES_MARGIN_SECONDS = 5.0
#: Seconds between full listings of a project listed incrementally (any doubt forces one sooner).
FULL_RESYNC_SECONDS = 600.0
#: servers deleted by this process from which a refresh asks for deleted servers apart: one more
#: request (~20-50 ms on Nova) against a detailed server each (8-13 ms and ~1.4 KB)
DELETED_APART_AFTER = 5


class IncrementalView:
    """The installation's VMs of one project, kept up to date by incremental listings.

    One full listing, then only the servers changed since the newest ``updated`` time seen (the
    cloud's clock, so a skewed local clock does not matter) less CHANGES_MARGIN_SECONDS, merged
    in: changed ones replaced, deleted ones dropped. A full listing again after
    `full_resync_seconds`, after a failed refresh (what was missed is unknown), and whenever the
    backend has no incremental listing or no ``updated`` time was seen.

    The servers this process deleted since the last refresh (``deleted()``) are in the next
    one's changes; from `deleted_apart_after` of them on, it asks for the deleted servers
    apart, by id only (the backend's ``deleted_apart``)."""

    def __init__(self, full_resync_seconds: float = FULL_RESYNC_SECONDS,
                 margin_seconds: float = CHANGES_MARGIN_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 deleted_apart_after: int = DELETED_APART_AFTER) -> None:
        self.full_resync_seconds = full_resync_seconds
        self.margin = timedelta(seconds=margin_seconds)
        self.deleted_apart_after = deleted_apart_after
        self._clock = clock
        self._lock = threading.Lock()
        self._vms: dict[str, VM] = {}
        self._newest: datetime | None = None
        self._full_at: float | None = None  # None: the next refresh lists everything
        self._deleted_since = 0  # servers this process deleted since the last refresh
        self._deleted_lock = threading.Lock()  # not the view's: a delete never waits for a listing
        self.full_listings = 0
        self.incremental_listings = 0

    def deleted(self, count: int) -> None:
        """This process deleted `count` servers: the next refresh will list them as changed."""
        with self._deleted_lock:
            self._deleted_since += count

    def forget(self) -> None:
        """Doubt: the next refresh is a full listing."""
        with self._lock:
            self._full_at = None

    def refresh(self, backend: CloudBackend, installation: str) -> list[VM]:
        with self._lock:
            try:
                return self._refresh(backend, installation)
            except BaseException:
                self._full_at = None
                raise

    def _refresh(self, backend: CloudBackend, installation: str) -> list[VM]:
        now = self._clock()
        due = self._full_at is None or now - self._full_at >= self.full_resync_seconds
        with self._deleted_lock:
            deleted, self._deleted_since = self._deleted_since, 0
        changes = None
        if not due and self._newest is not None:
            changes = backend.list_installation_changes(installation, self._newest - self.margin,
                                                        deleted_apart=deleted >= self.deleted_apart_after)
        if changes is None:
            vms = backend.list_installation_vms(installation)
            self._vms = {vm.id: vm for vm in vms}
            self._newest = None
            self._full_at = now
            self.full_listings += 1
        else:
            vms = changes.vms
            for vm_id in changes.gone:
                self._vms.pop(vm_id, None)
            self._vms.update((vm.id, vm) for vm in vms)
            self.incremental_listings += 1
        for vm in vms:
            if vm.updated is not None and (self._newest is None or vm.updated > self._newest):
                self._newest = vm.updated
        return list(self._vms.values())


class SharedProject:
    """The shared listing and quota of one cloud project (and installation)."""

    def __init__(self, scope: Hashable | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.scope = scope
        self.listing: SharedValue[Snapshot] = SharedValue(clock)
        self.limits: SharedValue[Quota] = SharedValue(clock)
        self.view = IncrementalView()

    def vms(self, backend: CloudBackend, owner: OwnerTags, max_age: float) -> Mapping[str, VM]:
        """The VMs of `owner` (installation and CE) by name."""
        def fetch() -> Snapshot:
            if self.scope is None:
                return Snapshot.of(backend.list_vms(owner))
            return Snapshot.of(self.view.refresh(backend, owner.installation))

        return self.listing.get(fetch, max_age, fetcher=backend).vms_of(owner.ce)

    def quota(self, backend: CloudBackend, max_age: float) -> Quota:
        return self.limits.get(backend.quota, max_age, fetcher=backend)

    def created(self, vms: list[VM]) -> None:
        """VMs this process just created: added to the listing; the quota is read again."""
        self.listing.amend(lambda snapshot: snapshot.with_created(vms))
        self.limits.invalidate()

    def deleted(self, vm_ids: list[str]) -> None:
        """VMs whose delete the cloud just accepted: listed DELETING; the quota is read again."""
        ids = set(vm_ids)
        self.listing.amend(lambda snapshot: snapshot.with_deleting(ids))
        self.limits.invalidate()

    def invalidate(self) -> None:
        """After a change of uncertain outcome: the next listing and quota come from the cloud
        (the listing a full one)."""
        self.view.forget()
        self.listing.invalidate()
        self.limits.invalidate()


class _Registry:
    """The process's SharedProjects by scope; an entry lives while a CE holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: weakref.WeakValueDictionary[Hashable, SharedProject] = weakref.WeakValueDictionary()

    def project(self, scope: Hashable) -> SharedProject:
        with self._lock:
            project = self._projects.get(scope)
            if project is None:
                project = self._projects[scope] = SharedProject(scope)
            return project

    def invalidate_all(self) -> None:
        with self._lock:
            projects = list(self._projects.values())
        for project in projects:
            project.invalidate()


_REGISTRY = _Registry()


def shared_project(backend: CloudBackend, installation: str) -> SharedProject:
    """The SharedProject of the cloud project `backend` lists, for this installation; a backend
    without a listing scope gets one of its own (shared with nobody)."""
    scope = backend.listing_scope()
    if scope is None:
        return SharedProject(None)
    return _REGISTRY.project((scope, installation))


def invalidate_all() -> None:
    """Every shared listing and quota of this process is fetched again on next use (a change was
    made outside this process that must be seen at once, e.g. between benchmark passes)."""
    _REGISTRY.invalidate_all()
