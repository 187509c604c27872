"""One pool of DELETE threads per cloud project, shared by the project's CEs.

The CEs of one project are served at once; each sends its deletions here, so the project's
cloud gets at most MaxDeleteThreads DELETEs at a time (the smallest value of its CEs), however
many CEs delete in the same cycle, and one CE's deletions start while another CE still decides.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend


class ProjectDeletions:
    """A project's DELETE threads, at most `threads` at once (`resize` before a cycle)."""

    def __init__(self, threads: int, name: str = "vm-delete") -> None:
        self._name = name
        self._lock = threading.Lock()
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=name)

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
        for future in self.start(backend, list(vm_ids)):
            errors.update(future.result())
        return errors

    def start(self, backend: CloudBackend, vm_ids: list[str]) -> list[Future]:
        """Send the deletions now; each future's result is {vm_id: error} (empty: deleted)."""
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
