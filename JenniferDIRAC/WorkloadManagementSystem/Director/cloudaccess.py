"""Each CE's backend, kept from cycle to cycle, and the ONE listing of a cloud project in a cycle.

CEs of one cloud project (the backend's ``listing_scope()``) and installation share one listing
per cycle (``one_listing_per_project``): the listing of the installation's VMs starts with the
project's turn in the cycle (``start_listing``; incrementally where the cloud can:
sharedlisting.IncrementalView, kept between cycles) and each CE takes its VMs from it. A backend without a scope lists its own CE's VMs. The CEs of a
project also share one pool of DELETE threads (deletions.py), as large as the smallest
MaxDeleteThreads of the project's CEs.

A rotated CloudAuth file (or clouds.yaml) is read again at the next cycle, and at once when the
cloud refuses the credentials (one retry of the listing with the file read again).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.backends import credentials_changed, make_backend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError
from JenniferDIRAC.Resources.Cloud.model import VM
from JenniferDIRAC.Resources.Cloud.sharedlisting import SharedProject, shared_project
from JenniferDIRAC.WorkloadManagementSystem.Director.deletions import ProjectDeletions
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle


class ProjectListing:
    """The installation's VMs in one cloud project, listed once per cycle."""

    def __init__(self, project: SharedProject) -> None:
        self.project = project
        self.lock = threading.Lock()  # CEs of the project handled at once wait for one listing
        self.cycle: int | None = None
        self.vms: list[VM] = []
        self._by_ce: dict[str, list[VM]] | None = None  # the listing's VMs by owner CE, made once
        self.error: CloudError | None = None
        self.discovery: dict = {}  # the cloud's API version documents, one fetch for the project's CEs

    def vms_in_cycle(self, backend: CloudBackend, config: CloudCEConfig, cycle: int | None) -> list[VM]:
        """The listing of `cycle` (None: a new one each call), in full every FullResyncSeconds
        of `config`; a failed listing's error is kept for the cycle, except refused credentials
        (another CE's may be accepted)."""
        with self.lock:
            if cycle is not None and self.cycle == cycle:
                if self.error is not None:
                    raise self.error
                return self.vms
            self.project.view.full_resync_seconds = config.full_resync_seconds
            try:
                vms = self.project.view.refresh(backend, config.owner().installation)
            except CloudAuthError:
                raise
            except CloudError as exc:
                self.cycle, self.vms, self.error = cycle, [], exc
                raise
            self.cycle, self.vms, self.error, self._by_ce = cycle, vms, None, None
            return vms

    def ce_vms_in_cycle(self, backend: CloudBackend, config: CloudCEConfig, cycle: int | None) -> list[VM]:
        """The VMs of `cycle`'s listing tagged with `config`'s CE: the listing split by CE once
        (each VM's owner read once a cycle, not once per CE of the project)."""
        vms = self.vms_in_cycle(backend, config, cycle)
        with self.lock:
            if self._by_ce is None or self.vms is not vms:
                by_ce: dict[str, list[VM]] = {}
                for vm in vms:
                    owner = vm.owner
                    if owner is not None:
                        by_ce.setdefault(owner.ce, []).append(vm)
                if self.vms is vms:
                    self._by_ce = by_ce
            else:
                by_ce = self._by_ce
        return by_ce.get(config.owner().ce, [])


class CEBackends:
    """{CE name: (CloudCEConfig, CloudBackend)}, a backend built again when its CE's parameters
    or credential files change. `metrics` instruments each backend (Monitoring/metrics.py)."""

    def __init__(self, metrics, log):
        self.metrics = metrics
        self.log = log
        self.cached: dict[str, tuple[CloudCEConfig, CloudBackend]] = {}
        self._lock = threading.Lock()
        self.projects: dict[Hashable, ProjectListing] = {}  # (scope, installation) -> listing
        self.deleters: dict[Hashable, ProjectDeletions] = {}  # project (or ("CE", name)) -> pool
        self._ce_project: dict[str, Hashable] = {}  # CE -> its project, as by_project found it
        self._cycles = itertools.count(1)
        self._cycle: int | None = None

    @contextmanager
    def one_listing_per_project(self) -> Iterator[None]:
        """Within: one listing per cloud project, whatever the number of its CEs."""
        self._cycle = next(self._cycles)
        try:
            yield
        finally:
            self._cycle = None

    def backend(self, ce: str, params: Mapping, reread: bool = False) -> tuple[CloudCEConfig, CloudBackend]:
        """(config, backend) of `ce`; `reread`: build it again from the credential files."""
        try:
            config = CloudCEConfig.from_ce_parameters(ce, params)
        except CloudError as exc:
            raise CENotServedThisCycle(str(exc)) from None
        with self._lock:
            cached = self.cached.get(ce)
            if cached and cached[0] == config and not reread and not credentials_changed(cached[1]):
                return cached
            if cached:
                self.cached.pop(ce, None)
                cached[1].close()
            try:
                backend = self.metrics.instrument(ce, make_backend(config))
            except CloudError as exc:
                raise CENotServedThisCycle(str(exc)) from None
            self.cached[ce] = (config, backend)
            return config, backend

    def project_key(self, config: CloudCEConfig, backend: CloudBackend) -> Hashable | None:
        """What identifies the CE's cloud project and installation; None: not shared."""
        scope = backend.listing_scope()
        return None if scope is None else (scope, config.owner().installation)

    def by_project(self, ces: list[tuple[str, Mapping]]) -> list[list[str]]:
        """The CE names grouped by cloud project (in their order); a CE whose project cannot be
        told now (configuration, cloud unreachable) is a group of its own, skipped later."""
        groups: dict[Hashable, list[str]] = {}
        threads: dict[Hashable, int] = {}  # the smallest MaxDeleteThreads of the project's CEs
        for ce, params in ces:
            try:
                config, backend = self.backend(ce, params)
                key = self.project_key(config, backend) or ("CE", ce)
                threads[key] = min(threads.get(key, config.max_delete_threads), config.max_delete_threads)
            except (CloudError, CENotServedThisCycle):
                key = ("CE", ce)
            groups.setdefault(key, []).append(ce)
            self._ce_project[ce] = key
        with self._lock:
            for key, count in threads.items():
                if key in self.deleters:
                    self.deleters[key].resize(count)
                else:
                    self.deleters[key] = ProjectDeletions(count)
            # a project (or CE) gone from the CS: its idle DELETE threads end with it
            gone = [self.deleters.pop(key) for key in list(self.deleters) if key not in groups]
        for deleter in gone:
            deleter.close()
        return list(groups.values())

    def close(self) -> None:
        """End every DELETE pool and backend connection (the agent's finalize)."""
        with self._lock:
            deleters, self.deleters = list(self.deleters.values()), {}
            backends, self.cached = [backend for _, backend in self.cached.values()], {}
        for deleter in deleters:
            deleter.close()
        for backend in backends:
            backend.close()

    def deletions(self, ce: str, config: CloudCEConfig) -> ProjectDeletions:
        """The DELETE threads of `ce`'s project (by_project's grouping; its own otherwise)."""
        key = self._ce_project.get(ce, ("CE", ce))
        with self._lock:
            deleter = self.deleters.get(key)
            if deleter is None:
                deleter = self.deleters[key] = ProjectDeletions(config.max_delete_threads)
            return deleter

    def _list(self, config: CloudCEConfig, backend: CloudBackend) -> list[VM]:
        owner = config.owner()
        key = self.project_key(config, backend)
        if key is None:
            return backend.list_vms(owner)
        with self._lock:
            listing = self.projects.get(key)
            if listing is None:
                listing = self.projects[key] = ProjectListing(shared_project(backend, owner.installation))
        backend.share_discovery(listing.discovery)
        return listing.ce_vms_in_cycle(backend, config, self._cycle)

    def deleted(self, ce: str, count: int) -> None:
        """`ce` deleted `count` servers: its project's next refresh lists them as changed."""
        with self._lock:
            listing = self.projects.get(self._ce_project.get(ce))
        if listing is not None and count:
            listing.project.view.deleted(count)

    def start_listing(self, ce: str, params: Mapping) -> None:
        """Take this cycle's listing of `ce`'s cloud project now, while its CEs read their
        databases (they then wait for it); a CE without a shared project lists on its own. What
        fails is the CEs' to see: a failed listing is kept for the cycle, refused credentials
        are read again by each CE's own call."""
        try:
            config, backend = self.backend(ce, params)
            if self.project_key(config, backend) is not None:
                self._list(config, backend)
        except (CloudError, CENotServedThisCycle):
            pass

    def listing(self, ce: str, params: Mapping):
        """(config, backend, the listing of the CE's project: filter it on the CE's owner);
        CENotServedThisCycle if it cannot be had. Refused credentials are read again from their
        file and the listing tried once more (a file rotated with its size and time kept looks
        unchanged)."""
        config, backend = self.backend(ce, params)
        try:
            try:
                return config, backend, self._list(config, backend)
            except CloudAuthError as exc:
                self.log.info("Credentials refused, reading them again", f"{ce}: {exc}")
                config, backend = self.backend(ce, params, reread=True)
                return config, backend, self._list(config, backend)
        except CloudError as exc:
            if isinstance(exc, CloudAuthError):
                with self._lock:
                    stale = self.cached.pop(ce, None)  # read again next cycle too
                if stale:
                    stale[1].close()
            raise CENotServedThisCycle(f"listing failed, nothing decided: {exc}") from None
