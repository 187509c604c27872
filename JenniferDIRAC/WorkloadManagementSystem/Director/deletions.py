"""One pool of DELETE threads per cloud project, shared by the project's CEs.

The CEs of one project are served at once; each sends its deletions here, so the project's
cloud gets at most MaxDeleteThreads DELETEs at a time (the smallest value of its CEs), however
many CEs delete in the same cycle, and one CE's deletions start while another CE still decides.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.errors import CloudError


class ProjectDeletions:
    """A project's DELETE threads, at most `threads` at once (`resize` before a cycle)."""

    def __init__(self, threads: int, name: str = "vm-delete") -> None:
        self._name = name
        self._lock = threading.Lock()
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=name)
        self._discovery_lock = threading.Lock()
        self._discovered: weakref.WeakSet = weakref.WeakSet()  # backends whose discovery is settled

    def resize(self, threads: int) -> None:
        """Bound the next deletions at `threads` (those under way finish in the old pool)."""
        threads = max(1, int(threads))
        with self._lock:
            if threads == self.threads:
                return
            old, self.threads = self._pool, threads
            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=self._name)
        old.shutdown(wait=False)

    def delete(self, backend: CloudBackend, vm_ids: list[str]) -> dict[str, str]:
        """``backend.delete_vms`` of each id in the project's pool; {vm_id: error} of those that
        failed (an exception is that VM's error, never the others')."""
        errors: dict[str, str] = {}
        vm_ids = list(vm_ids)
        if vm_ids:
            self._settle_discovery(backend)
        for future in self._submit(backend, vm_ids):
            errors.update(future.result())
        return errors

    def _settle_discovery(self, backend: CloudBackend) -> None:
        """Before a backend's first DELETE, one backend of the project at a time: the first
        fetches the cloud's API version document into the project's shared cache
        (``share_discovery``), the others find it there; the first DELETEs of the project's CEs,
        sent at once, would each fetch it. DELETEs themselves are never held back."""
        if backend in self._discovered:
            return
        with self._discovery_lock:
            if backend in self._discovered:
                return
            try:
                backend.settle_discovery()
            except CloudError:
                pass  # the DELETEs that follow report what the cloud says
            self._discovered.add(backend)

    def _submit(self, backend: CloudBackend, vm_ids: list[str]) -> list[Future]:
        with self._lock:  # not resized while submitting
            return [self._pool.submit(self._attempt, backend, vm_id) for vm_id in vm_ids]

    @staticmethod
    def _attempt(backend: CloudBackend, vm_id: str) -> dict[str, str]:
        try:
            return backend.delete_vms([vm_id])
        except Exception as exc:  # noqa: BLE001 - one delete failing never hides the others
            return {vm_id: str(exc) or type(exc).__name__}

    def close(self) -> None:
        with self._lock:
            pool = self._pool
        pool.shutdown(wait=True)
