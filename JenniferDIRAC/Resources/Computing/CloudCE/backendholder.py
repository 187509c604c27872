"""The CE's one cloud backend: built at first use, built again when a credential file it was read
from is rotated (CloudAuth, clouds.yaml) or after the cloud refused the credentials; with it, the
listing and quota the CE shares with the other CEs of its cloud project (sharedlisting.py)."""

from __future__ import annotations

import threading

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.sharedlisting import SharedProject, shared_project


class BackendHolder:
    def __init__(self, log, ce_name: str) -> None:
        self.log = log
        self.ce_name = ce_name
        self._lock = threading.Lock()
        self._backend: CloudBackend | None = None
        self._shared: SharedProject | None = None

    def get(self, config: CloudCEConfig) -> CloudBackend:
        """The backend of `config`, a new one when its credential files changed since."""
        from JenniferDIRAC.Resources.Cloud.backends import credentials_changed, make_backend

        stale = None
        with self._lock:
            if self._backend is not None and credentials_changed(self._backend):
                # a rotated CloudAuth file / clouds.yaml: read it again, new session
                self.log.info("Cloud credentials changed, reading them again", self.ce_name)
                stale, self._backend, self._shared = self._backend, None, None
            if self._backend is None:
                self._backend = make_backend(config)
            backend = self._backend
        if stale is not None:
            self._close(stale)
        return backend

    def drop(self) -> None:
        """Forget the backend (its configuration changed, the credentials were refused)."""
        with self._lock:
            backend, self._backend, self._shared = self._backend, None, None
        if backend is not None:
            self._close(backend)

    def project(self, backend: CloudBackend, installation: str) -> SharedProject:
        """The listing and quota this CE shares with the other CEs of its cloud project."""
        if self._shared is None:
            self._shared = shared_project(backend, installation)
        return self._shared

    def _close(self, backend: CloudBackend) -> None:
        try:
            backend.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            self.log.verbose("Closing the cloud connection failed", repr(exc))
