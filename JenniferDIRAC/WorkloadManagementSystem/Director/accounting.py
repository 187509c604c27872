"""The accounting of a CE's finished VMs (APEL records, DIRAC accounting), with the flavor
properties (the benchmark a cloud may declare) read from the cloud once a day per flavor and
cloud project (the CEs of one project share them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from JenniferDIRAC.Resources.Cloud.errors import CloudError
from JenniferDIRAC.WorkloadManagementSystem.Accounting.APEL import (
    DEFAULT_HS06_PER_CORE,
    AccountingSettings,
    account_finished_vms,
)
from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import Thresholds

#: how long the VMDirector trusts a flavor's properties (benchmark) before reading them again
FLAVOR_PROPERTIES_SECONDS = 86400.0


class VMAccounting:
    """Accounts finished VMs; `apel_directory` ("" = no APEL records), `send_dirac_accounting`."""

    def __init__(self, backends: CEBackends, log, apel_directory: str, send_dirac_accounting: bool):
        self.backends = backends
        self.log = log
        self.apel_directory = apel_directory
        self.send_dirac_accounting = send_dirac_accounting
        self.flavor_cache: dict[
            tuple[str, str], tuple[float, dict | None]
        ] = {}  # (project or CE, flavor) -> (read, properties)
        self._flavor_lock = threading.Lock()  # CEs of a project served at once read a flavor once

    def account(self, client, ce: str, names: set[str], params: Mapping, thresholds: Thresholds) -> int:
        """Account the VMs `names` of `ce`; how many were accounted (failures retried next cycle)."""
        if not names:
            return 0
        try:
            hs06 = float(params.get("HS06PerCore", DEFAULT_HS06_PER_CORE))
        except (TypeError, ValueError):
            self.log.warn(
                "CE option HS06PerCore is not a number, using the default", f"{ce}: {DEFAULT_HS06_PER_CORE}"
            )
            hs06 = DEFAULT_HS06_PER_CORE
        result = client.getAccountingRecords(ce=ce)
        if not result["OK"]:
            self.log.warn("Cannot read accounting records", result["Message"])
            return 0
        vms = [vm for vm in result["Value"] if vm["vm_name"] in names]
        if not vms:
            return 0
        settings = AccountingSettings(
            fizzle_seconds=int(thresholds.fizzle_seconds),
            apel_directory=self.apel_directory,
            send_dirac_accounting=self.send_dirac_accounting,
            hs06_per_core=lambda vm: hs06,
            flavor_properties=self.flavor_properties(ce, params),
        )
        result = account_finished_vms(vms, settings, client=client)
        if not result["OK"]:
            self.log.warn("Accounting failed, retried next cycle", result["Message"])
            return 0
        return len(result["Value"]["accounted"])

    def mark_handled(self, client, names: set[str]) -> None:
        """Accounting is off: still mark the finished VMs as handled, so that nothing about them
        (a create failure, say) is counted again in later cycles."""
        if not names:
            return
        result = client.markAccounted(sorted(names))
        if not result["OK"]:
            self.log.warn("Cannot mark finished VMs as handled", result["Message"])

    def flavor_properties(self, ce: str, params: Mapping) -> Callable[[dict], dict[str, str]]:
        """VM record -> its flavor's properties; {} if the cloud cannot say (then HS06PerCore counts)."""
        resolved: list[tuple] = []  # (backend, project): the CE's, found at its first VM with a flavor

        def properties(vm: dict) -> dict[str, str]:
            flavor = vm.get("flavor") or ""
            if not flavor:
                return {}
            try:
                if not resolved:
                    config, backend = self.backends.backend(ce, params)
                    resolved.append((backend, self.backends.project_key(config, backend) or ce))
                backend, project = resolved[0]
                key = (project, flavor)
                with self._flavor_lock:
                    read, found = self.flavor_cache.get(key, (0.0, None))
                    if found is None or time.time() - read > FLAVOR_PROPERTIES_SECONDS:
                        found = backend.flavor_properties(f"name:{flavor}")
                        self.flavor_cache[key] = (time.time(), found)
            except (CloudError, CENotServedThisCycle) as exc:
                self.log.warn("Cannot read the flavor's properties", f"{ce} {flavor}: {exc}")
                found = {}
            return found

        return properties
