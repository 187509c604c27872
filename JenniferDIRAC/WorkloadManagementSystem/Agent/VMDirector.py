"""VMDirector: keeps every cloud VM healthy, cheap and accounted for.

.. literalinclude:: ../ConfigTemplate.cfg
  :start-after: ##BEGIN VMDirector
  :end-before: ##END
  :dedent: 2
  :caption: VMDirector options

Each cycle, for every cloud CE it serves, the agent takes ONE listing of the VMs that this
installation owns on that CE, reads the matching pilot records (PilotAgentsDB) and VM records
(VMDB), asks the lifecycle policy (``Lifecycle/VMLifecycle.py``) what to do and applies the
answer: pilot statuses first, then deletions in one bulk call, VM records, backoffs, accounting.
A CE whose configuration, cloud or databases cannot be read is skipped for the cycle: nothing is
ever decided from a failed listing, and the other CEs carry on.

Per-CE and per-queue overrides: a CE or queue option of the same name as BootTimeout,
ZombieGrace, OrphanGrace, LostPilotGrace, HeartbeatTimeout, FizzleSeconds, BackoffSeconds,
DeletingTimeout or MaxLifetime replaces the agent's value. Each VM is judged with the options of
the queue it was submitted for (its ``jdirac-queue`` metadata; the queue's options over the
CE's, as the SiteDirector merges them, ``Context_MaxLifetime`` included); a VM without that
metadata (created before v0.2.0) and the pilots whose VM is gone get the CE-level options.
``HS06PerCore`` (default 10) normalises the CE's accounting.

A rotated CloudAuth file (or clouds.yaml) is read again at the next cycle, and at once when the
cloud refuses the credentials (one retry of the listing with the file read again).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from DIRAC import S_ERROR, S_OK, gConfig
from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues
from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters
from DIRAC.Core.Base.AgentModule import AgentModule
from DIRAC.Core.Utilities.DErrno import EWMSNOPILOT, cmpError

from JenniferDIRAC.Resources.Cloud.backends import credentials_changed, make_backend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError
from JenniferDIRAC.Resources.Cloud.model import VMState
from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import (
    NullDirectorMetrics,
    start_director_metrics,
)
from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import ce_level_parameters, queue_parameters
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (
    BackoffState,
    ClearBackoff,
    ReleaseProbe,
    StartBackoff,
    aware,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    PILOT_TRANSIENT,
    Account,
    CEView,
    DeleteVM,
    PilotRecord,
    RecordGone,
    SetPilotStatus,
    Thresholds,
    VMRecord,
    decide,
    split_twins,
)

#: Agent option -> Thresholds field; a CE option of the same name overrides it for that CE.
THRESHOLD_OPTIONS = {
    "BootTimeout": ("boot_timeout", 3600),
    "ZombieGrace": ("zombie_grace", 1800),
    "OrphanGrace": ("orphan_grace", 900),
    "LostPilotGrace": ("lost_pilot_grace", 600),
    "HeartbeatTimeout": ("heartbeat_timeout", 3600),
    "FizzleSeconds": ("fizzle_seconds", 600),
    "BackoffSeconds": ("backoff_seconds", 1800),
    "DeletingTimeout": ("deleting_timeout", 900),
}
PILOT_DB = "WorkloadManagement/PilotAgentsDB"
DEFAULT_HS06_PER_CORE = 10.0
#: Orphan sightings saved more than this many polling times ago are not from the previous cycle.
SIGHTINGS_MAX_AGE_CYCLES = 3


@dataclass
class CEOptions:
    """A CE's options: `params` (its first queue's, for what the CE has once: credentials,
    listing, accounting), `ce_level` (no queue's) and each queue's."""

    params: dict
    ce_level: dict
    queues: dict


@dataclass
class CEReport:
    """What one CE's cycle did, for the cycle's log line."""

    ce: str
    vms: int = 0
    deleted: int = 0
    delete_failures: int = 0
    pilots_set: int = 0
    accounted: int = 0
    backoffs: int = 0
    skipped: str = ""  # why the CE was skipped, "" if it was not

    def line(self) -> str:
        if self.skipped:
            return f"{self.ce}: skipped ({self.skipped})"
        return (
            f"{self.ce}: {self.vms} VMs, {self.deleted} deleted, {self.delete_failures} delete failures, "
            f"{self.pilots_set} pilot statuses, {self.accounted} accounted, {self.backoffs} backoffs"
        )


class _Skip(Exception):
    """This CE cannot be handled this cycle."""


class PilotRecords:
    """PilotAgentsDB directly where it is configured on this host, PilotManager otherwise."""

    def __init__(self):
        if getDBParameters(PILOT_DB)["OK"]:
            from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

            self.store = PilotAgentsDB()
        else:
            from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

            self.store = PilotManagerClient()

    def records(self, ce: str, references: set[str]) -> dict[str, PilotRecord]:
        """The records of `references` and of every transient pilot sent to `ce`."""
        result = self.store.selectPilots({"DestinationSite": ce, "Status": sorted(PILOT_TRANSIENT)})
        if not result["OK"]:
            raise _Skip(f"cannot select pilots: {result['Message']}")
        wanted = sorted(references | set(result["Value"]))
        if not wanted:
            return {}
        result = self.store.getPilotInfo(wanted)
        if not result["OK"]:
            if cmpError(result, EWMSNOPILOT):
                return {}
            raise _Skip(f"cannot read pilot records: {result['Message']}")
        records = {}
        for ref, info in result["Value"].items():
            jobs = info.get("Jobs") or []
            records[ref] = PilotRecord(
                reference=ref,
                status=info["Status"],
                last_update=aware(info.get("LastUpdateTime")),
                submitted=aware(info.get("SubmissionTime")),
                job_id=max(jobs) if jobs else 0,
            )
        return records

    def set_status(self, reference: str, status: str, reason: str):
        return self.store.setPilotStatus(reference, status, None, reason)


#: how long the VMDirector trusts a flavor's properties (benchmark) before reading them again
FLAVOR_PROPERTIES_SECONDS = 86400.0


class VMDirector(AgentModule):
    metrics = NullDirectorMetrics()  # Monitoring/metrics.py; served when MetricsPort is set

    def initialize(self):
        self.vos = self.am_getOption("VO", [])
        self.sites = self.am_getOption("Site", [])
        self.ceNames = self.am_getOption("CE", [])
        self.ceTypes = self.am_getOption("CETypes", ["Cloud"])
        seconds = {option: default for option, (_, default) in THRESHOLD_OPTIONS.items()}
        seconds.update(MaxLifetime=0, ShutdownGrace=3600)
        for option, default in seconds.items():
            value = self.am_getOption(option, default)
            try:
                seconds[option] = float(value)
            except (TypeError, ValueError):
                seconds[option] = -1.0
            if seconds[option] < 0:
                return S_ERROR(f"VMDirector option {option}: must be a number of seconds >= 0, not {value!r}")
        self.maxLifetime = seconds.pop("MaxLifetime")
        self.shutdownGrace = seconds.pop("ShutdownGrace")
        self.thresholdDefaults = seconds
        self.dryRun = self.am_getOption("DryRun", False)
        self.accounting = self.am_getOption("Accounting", True)
        self.apelDirectory = self.am_getOption("ApelDirectory", "")
        self.diracAccounting = self.am_getOption("DIRACAccounting", True)
        self.vmState = None
        self.pilots = None
        self.backends = {}  # CE name -> (CloudCEConfig, CloudBackend)
        self.flavorProperties = {}  # (CE, flavor name) -> (time read, properties), for accounting
        self.orphanSightings = None  # CE name -> VM names without pilot record last cycle
        try:
            self.metrics = start_director_metrics(
                self.am_getOption("MetricsPort", 0),
                self.am_getOption("MetricsHost", "127.0.0.1"),
                lambda url: self.log.notice("VMDirector metrics on", url),
            )
        except (ValueError, OSError) as exc:
            return S_ERROR(f"VMDirector MetricsPort: {exc}")
        return S_OK()

    # The orphan sightings of the last cycle survive a restart (a file in the work directory),
    # but only as long as they are from the previous cycle: sightings must be consecutive.
    def _sightingsFile(self) -> str:
        return os.path.join(self.am_getWorkDirectory(), "orphan-sightings.json")

    def _loadSightings(self) -> dict[str, frozenset[str]]:
        try:
            with open(self._sightingsFile()) as stream:
                saved = json.load(stream)
            age = time.time() - float(saved["time"])
            if age > SIGHTINGS_MAX_AGE_CYCLES * max(float(self.am_getPollingTime()), 60.0):
                return {}
            return {ce: frozenset(names) for ce, names in saved["ces"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _saveSightings(self):
        path = self._sightingsFile()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".new", "w") as stream:
                json.dump(
                    {"time": time.time(), "ces": {ce: sorted(n) for ce, n in self.orphanSightings.items()}},
                    stream,
                )
            os.replace(path + ".new", path)
        except OSError as exc:
            self.log.warn("Cannot save the orphan sightings", f"{path}: {exc}")

    def _clients(self):
        """The database clients, made at the first cycle (a broken database fails a cycle, not the agent)."""
        if self.vmState is None:
            self.vmState = VMStateClient()
        if self.pilots is None:
            self.pilots = PilotRecords()

    # --- the cycle ---------------------------------------------------------------------------
    def execute(self):
        result = self._cloudCEs()
        if not result["OK"]:
            self.log.error("Cannot find the cloud CEs", result["Message"])
            return result
        ces = result["Value"]
        if ces:
            try:
                self._clients()
            except Exception as exc:  # a database that cannot be reached fails this cycle only
                self.log.exception("Cannot reach the pilot or VM database", lException=exc)
                return S_ERROR(f"Cannot reach the pilot or VM database: {exc}")
        if self.orphanSightings is None:
            self.orphanSightings = self._loadSightings()
        reports = []
        for ce, options in sorted(ces.items()):
            report = CEReport(ce)
            try:
                self._cycleCE(ce, options, report)
            except _Skip as exc:
                self.orphanSightings.pop(ce, None)  # sightings must come from consecutive cycles
                report.skipped = str(exc)
                self.log.warn("Skipping CE this cycle", f"{ce}: {exc}")
            except Exception as exc:  # one CE's bug or outage must not stop the others
                self.orphanSightings.pop(ce, None)
                report.skipped = f"unexpected error: {exc}"
                self.log.exception("Skipping CE this cycle", ce, lException=exc)
            reports.append(report)
            self.log.notice("VMDirector CE", report.line())
        if ces and not self.dryRun:
            self._saveSightings()
        skipped = sum(1 for r in reports if r.skipped)
        self.log.notice(
            "VMDirector cycle done",
            f"{len(reports)} CEs, {skipped} skipped, {sum(r.deleted for r in reports)} VMs deleted"
            + (" (dry run)" if self.dryRun else ""),
        )
        return S_OK()

    def _cloudCEs(self):
        """{CE name: CEOptions} of the CEs served."""
        if not gConfig.getSections("/Resources/Sites")["OK"]:
            return S_OK({})  # no site configured at all
        result = getQueues(
            siteList=self.sites or None,
            ceList=self.ceNames or None,
            ceTypeList=self.ceTypes,
        )
        if not result["OK"]:
            return result
        sites = {
            site: {ce: {**ceDict, "Queues": ceDict.get("Queues") or {}} for ce, ceDict in siteCEs.items()}
            for site, siteCEs in result["Value"].items()
        }
        resolved = queue_parameters(sites)
        if not resolved["OK"]:
            return resolved
        ces = {}
        for site, siteCEs in sites.items():
            for ce, ceDict in siteCEs.items():
                ceLevel = ce_level_parameters(site, ce, ceDict)
                queues = resolved["Value"].get(ce, {})
                params = next(iter(queues.values()), ceLevel)
                if self.vos and not self._servesVO(params):
                    continue
                ces[ce] = CEOptions(params=params, ce_level=ceLevel, queues=queues)
        return S_OK(ces)

    def _servesVO(self, params) -> bool:
        vos = params.get("VO") or params.get("Community") or ""
        vos = [v.strip() for v in (vos.split(",") if isinstance(vos, str) else vos) if v.strip()]
        return not vos or any(vo in self.vos for vo in vos)

    def _thresholds(self, params, config: CloudCEConfig) -> Thresholds:
        """The agent's thresholds, overridden by CE (or queue) options of the same name."""
        values = {}
        for option, default in [*self.thresholdDefaults.items(), ("MaxLifetime", self.maxLifetime)]:
            value = params.get(option, default)
            try:
                values[option] = float(value)
            except (TypeError, ValueError):
                values[option] = -1.0
            if values[option] < 0:
                raise _Skip(f"CS option {option} of CE {config.ce_name}: must be seconds >= 0, not {value!r}")
        maxLifetime = values.pop("MaxLifetime") or config.context_max_lifetime + self.shutdownGrace
        return Thresholds(
            max_lifetime=maxLifetime, **{THRESHOLD_OPTIONS[option][0]: v for option, v in values.items()}
        )

    def _queueThresholds(self, ce: str, options: CEOptions, config: CloudCEConfig):
        """(the CE-level thresholds, {queue: that queue's thresholds})."""
        ceLevel = self._thresholds(options.ce_level, self._lifetimeConfig(ce, options.ce_level, config))
        queues = {
            queue: self._thresholds(params, self._lifetimeConfig(ce, params, config))
            for queue, params in options.queues.items()
        }
        return ceLevel, queues

    @staticmethod
    def _lifetimeConfig(ce: str, params, fallback: CloudCEConfig) -> CloudCEConfig:
        """The configuration that gives `params`' Context_MaxLifetime; the CE level alone may lack
        options only its queues set (Instance_Image...), then only the lifetime is taken."""
        try:
            return CloudCEConfig.from_ce_parameters(ce, params)
        except CloudError:
            pass
        try:
            lifetime = int(params.get("Context_MaxLifetime", fallback.context_max_lifetime))
        except (TypeError, ValueError):
            raise _Skip(f"CS option Context_MaxLifetime of CE {ce}: not a number of seconds") from None
        return dataclasses.replace(fallback, context_max_lifetime=lifetime)

    def _backend(self, ce: str, params, reread: bool = False):
        try:
            config = CloudCEConfig.from_ce_parameters(ce, params)
        except CloudError as exc:
            raise _Skip(str(exc)) from None
        cached = self.backends.get(ce)
        if cached and cached[0] == config and not reread and not credentials_changed(cached[1]):
            return cached
        if cached:
            self.backends.pop(ce, None)
            cached[1].close()
        try:
            backend = self.metrics.instrument(ce, make_backend(config))
        except CloudError as exc:
            raise _Skip(str(exc)) from None
        self.backends[ce] = (config, backend)
        return config, backend

    def _listing(self, ce: str, params):
        """(config, backend, ONE listing of the CE's VMs); _Skip if it cannot be had. Refused
        credentials are read again from their file and the listing tried once more (a file
        rotated with its size and time kept looks unchanged)."""
        config, backend = self._backend(ce, params)
        try:
            try:
                return config, backend, backend.list_vms(config.owner())
            except CloudAuthError as exc:
                self.log.info("Credentials refused, reading them again", f"{ce}: {exc}")
                config, backend = self._backend(ce, params, reread=True)
                return config, backend, backend.list_vms(config.owner())
        except CloudError as exc:
            if isinstance(exc, CloudAuthError):
                stale = self.backends.pop(ce, None)  # read again next cycle too
                if stale:
                    stale[1].close()
            raise _Skip(f"listing failed, nothing decided: {exc}") from None

    def _cycleCE(self, ce: str, options: CEOptions, report: CEReport):
        params = options.params
        config, backend, vms = self._listing(ce, params)
        thresholds, queueThresholds = self._queueThresholds(ce, options, config)
        owner = config.owner()
        vms = [vm for vm in vms if owner.owns(vm.owner)]
        report.vms = len(vms)
        now = datetime.now(UTC)

        records = self._vmRecords(ce)
        # a name's VM record is its kept VM's: a twin's state or id must not overwrite it
        self._recordStates(split_twins(vms, records)[0], records)
        pilots = self.pilots.records(ce, {pilot_reference(ce, vm.name) for vm in vms})
        result = self.vmState.getBackoffs(ce=ce)
        if not result["OK"]:
            raise _Skip(f"cannot read backoffs: {result['Message']}")
        backoffs = {row["profile"]: BackoffState.from_record(row) for row in result["Value"]}
        self.metrics.ce_listed(ce, params.get("Site", ""), vms, records, backoffs, now)
        self.metrics.read_quota(config.openstack.project_name or ce, backend)

        view = CEView(
            owner,
            vms,
            pilots,
            records,
            backoffs,
            now,
            thresholds,
            self.orphanSightings.get(ce, frozenset()),
            queue_thresholds=queueThresholds,
            bootstrap_replayed=self._bootstrapReplayed(),
        )
        decision = decide(view)
        self.orphanSightings[ce] = decision.orphan_sightings
        self._apply(ce, backend, decision, report, params, thresholds)

    def _bootstrapReplayed(self) -> frozenset[str]:
        """VMs whose one-time bootstrap token was presented again (VMDB incidents); and the
        wrappers of ended VMs that never fetched theirs are forgotten."""
        self.vmState.forgetEndedBootstraps()
        result = self.vmState.getBootstrapIncidents()
        if not result["OK"]:
            self.log.warn("Cannot read bootstrap incidents", result["Message"])
            return frozenset()
        return frozenset(result["Value"])

    def _vmRecords(self, ce: str) -> dict[str, VMRecord]:
        records = {}
        for query in ({"active_only": True}, {"unaccounted_only": True}):
            result = self.vmState.getVMs(ce=ce, **query)
            if not result["OK"]:
                raise _Skip(f"cannot read VM records: {result['Message']}")
            for row in result["Value"]:
                records[row["vm_name"]] = VMRecord.from_record(row)
        return records

    def _recordStates(self, vms, records):
        """Tell VMDB what the cloud says of the VMs it knows (start and end times come from it)."""
        states = {}
        for vm in vms:
            if vm.name not in records or vm.state in (VMState.DELETING, VMState.UNKNOWN):
                continue
            info = {"state": vm.state.value, "vm_id": vm.id, "fault": vm.fault}
            if vm.launched:  # the cloud's launch time: right even for a VM never seen ACTIVE
                info["started"] = vm.launched
            if vm.state.is_terminal and vm.updated:
                info["ended"] = vm.updated
            states[vm.name] = info
        if states and not self.dryRun:
            result = self.vmState.setVMStates(states)
            if not result["OK"]:
                self.log.warn("Cannot record VM states", result["Message"])

    # --- applying the decision ---------------------------------------------------------------
    def _apply(self, ce: str, backend, decision, report: CEReport, params, thresholds: Thresholds):
        for action in decision.actions:
            self.log.info(f"{'Would apply' if self.dryRun else 'Applying'} on {ce}", repr(action))
        if self.dryRun:
            return

        failedRefs = set()
        for action in decision.of_type(SetPilotStatus):
            result = self.pilots.set_status(action.reference, action.status, action.reason)
            if result["OK"]:
                report.pilots_set += 1
            else:
                failedRefs.add(action.reference)
                self.log.warn("Cannot set pilot status", f"{action.reference}: {result['Message']}")

        deletes = [
            a for a in decision.of_type(DeleteVM) if not (a.after_pilot and a.after_pilot in failedRefs)
        ]
        ended = set()
        if deletes:
            try:
                errors = backend.delete_vms([a.vm_id for a in deletes])
            except CloudError as exc:
                errors = {a.vm_id: str(exc) for a in deletes}
            done = [a for a in deletes if a.vm_id not in errors]
            for action in deletes:
                if action.vm_id in errors:
                    self.log.warn("Cannot delete VM", f"{action.vm_name} on {ce}: {errors[action.vm_id]}")
                else:
                    self.log.notice("Deleted VM", f"{action.vm_name} on {ce}: {action.reason}")
            report.deleted, report.delete_failures = len(done), len(deletes) - len(done)
            self.metrics.deleted(ce, [a.reason for a in done])
            # a twin's name is its kept VM's: the record stays open
            done = [a for a in done if not a.twin]
            if done:
                result = self.vmState.markVMsDeleted({a.vm_name: a.reason for a in done})
                if result["OK"]:
                    ended |= {a.vm_name for a in done}
                else:
                    self.log.warn("Cannot mark VMs deleted", result["Message"])

        gone = decision.of_type(RecordGone)
        if gone:
            result = self.vmState.markVMsDeleted({a.vm_name: "gone from the cloud" for a in gone})
            if result["OK"]:
                ended |= {a.vm_name for a in gone}
            else:
                self.log.warn("Cannot close the records of vanished VMs", result["Message"])

        self._applyBackoffs(ce, decision, report)
        names = {a.vm_name for a in decision.of_type(Account) if not a.after_delete or a.vm_name in ended}
        if self.accounting:
            report.accounted = self._account(ce, names, params, thresholds)
        elif names:
            # Accounting is off: still mark the finished VMs as handled, so that nothing about
            # them (a create failure, say) is counted again in later cycles.
            result = self.vmState.markAccounted(sorted(names))
            if not result["OK"]:
                self.log.warn("Cannot mark finished VMs as handled", result["Message"])

    def _applyBackoffs(self, ce: str, decision, report: CEReport):
        for action in decision.of_type(StartBackoff):
            result = self.vmState.setBackoff(ce, action.profile, action.until, action.reason)
            if result["OK"]:
                report.backoffs += 1
                self.metrics.backoff_started(ce, action.profile)
                self.log.notice(
                    "Backing off",
                    f"{ce} profile {action.profile or '-'} until {action.until}: {action.reason}",
                )
            else:
                self.log.warn("Cannot record backoff", result["Message"])
        for action in decision.of_type(ClearBackoff):
            result = self.vmState.clearBackoff(ce, action.profile)
            if result["OK"]:
                self.log.notice("Backoff over", f"{ce} profile {action.profile or '-'}: a probe VM ran")
            else:
                self.log.warn("Cannot clear backoff", result["Message"])
        for action in decision.of_type(ReleaseProbe):
            result = self.vmState.releaseProbe(ce, action.profile)
            if not result["OK"]:
                self.log.warn("Cannot release the probe", result["Message"])

    def _flavorProperties(self, ce: str, params):
        """VM record -> its flavor's properties (the benchmark a cloud may declare), read from
        the cloud once a day per flavor; {} if the cloud cannot say (then HS06PerCore counts)."""

        def properties(vm: dict) -> dict[str, str]:
            flavor = vm.get("flavor") or ""
            if not flavor:
                return {}
            read, found = self.flavorProperties.get((ce, flavor), (0.0, None))
            if found is None or time.time() - read > FLAVOR_PROPERTIES_SECONDS:
                try:
                    found = self._backend(ce, params)[1].flavor_properties(f"name:{flavor}")
                except (CloudError, _Skip) as exc:
                    self.log.warn("Cannot read the flavor's properties", f"{ce} {flavor}: {exc}")
                    found = {}
                self.flavorProperties[(ce, flavor)] = (time.time(), found)
            return found

        return properties

    def _account(self, ce: str, names: set[str], params, thresholds: Thresholds) -> int:
        if not names:
            return 0
        from JenniferDIRAC.WorkloadManagementSystem.Accounting.APEL import (
            AccountingSettings,
            account_finished_vms,
        )

        try:
            hs06 = float(params.get("HS06PerCore", DEFAULT_HS06_PER_CORE))
        except (TypeError, ValueError):
            self.log.warn(
                "CE option HS06PerCore is not a number, using the default", f"{ce}: {DEFAULT_HS06_PER_CORE}"
            )
            hs06 = DEFAULT_HS06_PER_CORE
        result = self.vmState.getAccountingRecords(ce=ce)
        if not result["OK"]:
            self.log.warn("Cannot read accounting records", result["Message"])
            return 0
        vms = [vm for vm in result["Value"] if vm["vm_name"] in names]
        if not vms:
            return 0
        settings = AccountingSettings(
            fizzle_seconds=int(thresholds.fizzle_seconds),
            apel_directory=self.apelDirectory,
            send_dirac_accounting=self.diracAccounting,
            hs06_per_core=lambda vm: hs06,
            flavor_properties=self._flavorProperties(ce, params),
        )
        result = account_finished_vms(vms, settings, client=self.vmState)
        if not result["OK"]:
            self.log.warn("Accounting failed, retried next cycle", result["Message"])
            return 0
        return len(result["Value"]["accounted"])
