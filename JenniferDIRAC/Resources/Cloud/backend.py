"""The small interface every cloud backend implements. The CE and the VM director never branch
on the cloud type: they hold a CloudBackend.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from JenniferDIRAC.Resources.Cloud.errors import CloudError
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, OwnerTags, Quota, VMSpec

T = TypeVar("T")


#: Deletions sent at once (Nova answers a DELETE in 0.2 s and more: 779 one after another take
#: minutes); as bounded as creates (submission.create_vms).
DELETE_THREADS = 8


def delete_each(vm_ids: list[str], delete_one: Callable[[str], str | None],
                max_threads: int = DELETE_THREADS) -> dict[str, str]:
    """``delete_one(vm_id)`` for each id, at most `max_threads` at once; {vm_id: error} of
    those that returned an error message or raised."""
    def attempt(vm_id: str) -> str | None:
        try:
            return delete_one(vm_id)
        except Exception as exc:  # noqa: BLE001 - one delete failing never hides the others
            return str(exc) or type(exc).__name__

    if len(vm_ids) <= 1 or max_threads <= 1:
        outcomes = [attempt(vm_id) for vm_id in vm_ids]
    else:
        with ThreadPoolExecutor(max_workers=min(max_threads, len(vm_ids)), thread_name_prefix="vm-delete") as pool:
            outcomes = list(pool.map(attempt, vm_ids))
    return {vm_id: error for vm_id, error in zip(vm_ids, outcomes) if error is not None}


@dataclass
class Changes:
    """What an incremental listing returned: VMs that exist (new or changed) and the ids of
    servers the cloud says are deleted."""

    vms: list[VM] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)

#: Seconds a resolved image, flavor or network id is used before it is resolved again (sites
#: replace the image behind ``name:AlmaLinux-9``); the CE option ReferenceCacheSeconds.
DEFAULT_REFERENCE_TTL = 3600.0


class ReferenceCache(Generic[T]):
    """What each image, flavor or network reference (an id or `name:<name>`) resolved to, for
    `ttl` seconds; ``forget(ref)`` when the cloud says the id no longer exists."""

    def __init__(self, ttl: float = DEFAULT_REFERENCE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._ttl = ttl
        self._clock = clock
        self._resolved: dict[str, tuple[T, float]] = {}  # ref -> (value, resolved at)

    def get(self, ref: str, resolve: Callable[[str], T]) -> T:
        with self._lock:
            cached = self._resolved.get(ref)
            if cached is not None and self._clock() - cached[1] < self._ttl:
                return cached[0]
        value = resolve(ref)  # outside the lock: it calls the cloud
        with self._lock:
            self._resolved[ref] = (value, self._clock())
        return value

    def forget(self, ref: str) -> None:
        with self._lock:
            self._resolved.pop(ref, None)

    def values(self) -> list[T]:
        """Every value resolved so far (expired ones too: they still describe listed VMs)."""
        with self._lock:
            return [value for value, _ in self._resolved.values()]


class CloudBackend(ABC):
    #: Largest user data (bytes, after any compression and before base64) the cloud accepts.
    max_user_data_bytes: int = 65535
    #: States of the credential files this backend was built from (backends.make_backend sets
    #: them; backends.credentials_changed compares them with the files now)
    credential_files: tuple = ()

    def check_user_data_size(self, spec: VMSpec) -> None:
        """Raise CloudError when the spec's user data is larger than this cloud accepts."""
        if len(spec.user_data) > self.max_user_data_bytes:
            raise CloudError(
                f"user data of {len(spec.user_data)} bytes exceeds this cloud's limit of "
                f"{self.max_user_data_bytes} bytes"
            )

    @abstractmethod
    def list_vms(self, owner: OwnerTags) -> list[VM]:
        """All VMs of this installation and CE (owner.installation, owner.ce), in ONE listing
        (paginated where the API needs it). Raises CloudError on failure: a failed listing is
        never an empty one."""

    @abstractmethod
    def create_vm(self, spec: VMSpec) -> VM:
        """Create one VM. Raises QuotaExceeded, CloudUnreachable (the VM may or may not exist:
        look it up with find_vm_by_name before retrying), or CloudError."""

    @abstractmethod
    def find_vm_by_name(self, name: str, owner: OwnerTags) -> VM | None:
        """The owned VM with exactly this (unique) name, or None."""

    @abstractmethod
    def delete_vms(self, vm_ids: list[str]) -> dict[str, str]:
        """Delete VMs. Returns {vm_id: error message} for the ones that failed; an already
        deleted VM is a success."""

    @abstractmethod
    def console_log(self, vm_id: str) -> str:
        """The VM's console output ("" if the cloud has none)."""

    @abstractmethod
    def quota(self) -> Quota:
        """The project's absolute limits and usage."""

    @abstractmethod
    def resolve_image(self, ref: str) -> str:
        """Image id for an id or a `name:<name>` reference. Raises NotFound."""

    @abstractmethod
    def resolve_flavor(self, ref: str) -> Flavor:
        """Flavor for an id or a `name:<name>` reference. Raises NotFound."""

    @abstractmethod
    def resolve_networks(self, refs: list[str]) -> list[str]:
        """Network ids for ids or `name:<name>` references. Raises NotFound."""

    def flavor_properties(self, ref: str) -> dict[str, str]:
        """The properties of a flavor (id or `name:<name>`): OpenStack's extra specs, where a
        cloud declares e.g. the benchmark cASO reads (``accounting:benchmark_name``/``_value``).
        Empty (the default) for clouds without them. Raises CloudError like resolve_flavor."""
        return {}

    def forget_reference(self, what: str, ref: str) -> None:
        """Resolve `ref` ("image", "flavor" or "network" reference) again at its next use: the
        cloud said its id no longer exists. Backends keep their caches as ``_images``,
        ``_flavors`` and ``_networks`` (ReferenceCache); one without a cache has nothing to do."""
        cache = getattr(self, {"image": "_images", "flavor": "_flavors", "network": "_networks"}[what], None)
        if isinstance(cache, ReferenceCache):
            cache.forget(ref)

    def listing_scope(self) -> Hashable | None:
        """What identifies the VMs and quota this backend sees (the cloud project), equal for
        every backend that sees the same ones: CEs of one project then share one listing
        (sharedlisting.py). None (the default): this backend's listings are not shared."""
        return None

    def share_discovery(self, cache: dict) -> None:
        """Use `cache` for what this backend learns of the cloud's API versions, shared by the
        backends of one project (Director/cloudaccess.py): one discovery for all of them. The
        default: nothing to share."""

    def list_installation_vms(self, installation: str) -> list[VM]:
        """All VMs of this installation, every CE's, in ONE listing (raises CloudError like
        list_vms). Needed only when listing_scope() is not None."""
        raise NotImplementedError(f"{type(self).__name__} cannot list an installation's VMs")

    def list_project_vms(self) -> list[VM] | None:
        """Every JenniferDIRAC VM of the project, whatever its installation, in one listing
        (InstallationQuotaWeights counts them by installation); None (the default): this cloud
        cannot tell, the other installations are weighed as OthersQuotaWeight."""
        return None

    def list_installation_changes(self, installation: str, since: datetime,
                                  deleted_apart: bool = False) -> Changes | None:
        """The installation's VMs changed at or after `since` (the cloud's clock), deleted ones
        included, in one listing (`deleted_apart`: the deleted ones asked for apart, by id
        only, where that is cheaper); None (the default): this cloud has no such listing, list
        everything (list_installation_vms)."""
        return None

    def close(self) -> None:
        """Release connections."""
