"""Each CE's backend, kept from cycle to cycle, and the ONE listing of a CE's VMs in a cycle.

A rotated CloudAuth file (or clouds.yaml) is read again at the next cycle, and at once when the
cloud refuses the credentials (one retry of the listing with the file read again).
"""

from __future__ import annotations

from collections.abc import Mapping

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.backends import credentials_changed, make_backend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle


class CEBackends:
    """{CE name: (CloudCEConfig, CloudBackend)}, a backend built again when its CE's parameters
    or credential files change. `metrics` instruments each backend (Monitoring/metrics.py)."""

    def __init__(self, metrics, log):
        self.metrics = metrics
        self.log = log
        self.cached: dict[str, tuple[CloudCEConfig, CloudBackend]] = {}

    def backend(self, ce: str, params: Mapping, reread: bool = False) -> tuple[CloudCEConfig, CloudBackend]:
        """(config, backend) of `ce`; `reread`: build it again from the credential files."""
        try:
            config = CloudCEConfig.from_ce_parameters(ce, params)
        except CloudError as exc:
            raise CENotServedThisCycle(str(exc)) from None
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

    def listing(self, ce: str, params: Mapping):
        """(config, backend, ONE listing of the CE's VMs); CENotServedThisCycle if it cannot be
        had. Refused credentials are read again from their file and the listing tried once more
        (a file rotated with its size and time kept looks unchanged)."""
        config, backend = self.backend(ce, params)
        try:
            try:
                return config, backend, backend.list_vms(config.owner())
            except CloudAuthError as exc:
                self.log.info("Credentials refused, reading them again", f"{ce}: {exc}")
                config, backend = self.backend(ce, params, reread=True)
                return config, backend, backend.list_vms(config.owner())
        except CloudError as exc:
            if isinstance(exc, CloudAuthError):
                stale = self.cached.pop(ce, None)  # read again next cycle too
                if stale:
                    stale[1].close()
            raise CENotServedThisCycle(f"listing failed, nothing decided: {exc}") from None
