"""VMDirector: keeps every cloud VM healthy, cheap and accounted for.

.. literalinclude:: ../ConfigTemplate.cfg
  :start-after: ##BEGIN VMDirector
  :end-before: ##END
  :dedent: 2
  :caption: VMDirector options

Each cycle, for every cloud CE it serves, the agent takes the VMs that this installation owns
on that CE from ONE listing per cloud project (CEs of one project share it), reads the
matching pilot records (PilotAgentsDB) and VM records (VMDB), asks the lifecycle policy
(``Lifecycle/VMLifecycle.py``) what to do and applies the answer: the deletions that wait for no
pilot status are sent at once, and run while the VM states and pilot statuses are written; then
the deletions that waited for their pilot's status, the VM records, backoffs, accounting.
A CE whose configuration, cloud or databases cannot be read is skipped for the cycle: nothing is
ever decided from a failed listing, and the other CEs carry on.
The CEs of up to ``ProjectsInParallel`` cloud projects are handled at once: a slow cloud does not
hold up the others. The CEs of one project are handled at once too (up to ``CEsInParallel``):
they wait for the project's one listing, then send their deletions to the project's one pool of
DELETE threads (the smallest MaxDeleteThreads of its CEs), so one CE's deletions run while
another still decides and the cloud never gets more than that many DELETEs at once.

Per-CE and per-queue overrides: a CE or queue option of the same name as BootTimeout,
ZombieGrace, OrphanGrace, LostPilotGrace, HeartbeatTimeout, FizzleSeconds, BackoffSeconds,
DeletingTimeout or MaxLifetime replaces the agent's value. Each VM is judged with the options of
the queue it was submitted for (its ``jdirac-queue`` metadata; the queue's options over the
CE's, as the SiteDirector merges them, ``Context_MaxLifetime`` included); a VM without that
metadata (created before v0.2.0) and the pilots whose VM is gone get the CE-level options.
``HS06PerCore`` (default 10) normalises the CE's accounting.

A rotated CloudAuth file (or clouds.yaml) is read again at the next cycle, and at once when the
cloud refuses the credentials (one retry of the listing with the file read again).

This module is the DIRAC agent: the cycle and its order. Each part is in ``Director/``
(discovery, thresholds, cloud access, pilot and VM records, sightings, apply, accounting).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule

from JenniferDIRAC.Resources.Cloud.references import pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import CEParameters
from JenniferDIRAC.WorkloadManagementSystem.Director.accounting import VMAccounting
from JenniferDIRAC.WorkloadManagementSystem.Director.apply import (
    SentDeletes,
    close_gone_records,
    delete_vms,
    deletes_waiting_for_no_pilot,
    set_pilot_statuses,
    to_account,
)
from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
from JenniferDIRAC.WorkloadManagementSystem.Director.discovery import cloud_ces
from JenniferDIRAC.WorkloadManagementSystem.Director.pilotrecords import PilotRecords
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle, CEReport
from JenniferDIRAC.WorkloadManagementSystem.Director.sightings import OrphanSightingsFile
from JenniferDIRAC.WorkloadManagementSystem.Director.thresholds import AgentThresholds
from JenniferDIRAC.WorkloadManagementSystem.Director.vmrecords import (
    KeptRecords,
    bootstrap_replayed,
    bootstraps,
    record_states,
    vm_records,
)
from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import (
    NullDirectorMetrics,
    start_director_metrics,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import (
    BackoffState,
    ClearBackoff,
    ReleaseProbe,
    StartBackoff,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    CEView,
    Thresholds,
    decide,
    split_twins,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class VMDirector(AgentModule):
    metrics = NullDirectorMetrics()  # Monitoring/metrics.py; served when MetricsPort is set
    #: the policy's "now" (an aware datetime); a test gives the clock its cloud reads, so that
    #: one advance moves the cloud's time and the thresholds' together
    clock = staticmethod(utc_now)

    def initialize(self):
        self.vos = self.am_getOption("VO", [])
        self.sites = self.am_getOption("Site", [])
        self.ceNames = self.am_getOption("CE", [])
        self.ceTypes = self.am_getOption("CETypes", ["Cloud"])
        try:
            self.thresholdOptions = AgentThresholds.from_options(self.am_getOption)
        except ValueError as exc:
            return S_ERROR(str(exc))
        self.dryRun = self.am_getOption("DryRun", False)
        self.projectsInParallel = self.am_getOption("ProjectsInParallel", 4)
        if not isinstance(self.projectsInParallel, int) or self.projectsInParallel < 1:
            return S_ERROR(f"VMDirector ProjectsInParallel: {self.projectsInParallel!r} is not a whole number >= 1")
        self.cesInParallel = self.am_getOption("CEsInParallel", 8)
        if not isinstance(self.cesInParallel, int) or self.cesInParallel < 1:
            return S_ERROR(f"VMDirector CEsInParallel: {self.cesInParallel!r} is not a whole number >= 1")
        self.accounting = self.am_getOption("Accounting", True)
        apelDirectory = self.am_getOption("ApelDirectory", "")
        diracAccounting = self.am_getOption("DIRACAccounting", True)
        self.vmState = None
        self.pilots = None
        self.orphanSightings = None  # CE name -> VM names without pilot record last cycle
        self.replayedBootstraps = frozenset()  # this cycle's VMs whose bootstrap was presented again
        self.keptRecords = KeptRecords()  # each CE's VM records of the last cycle, reused when unchanged
        try:
            self.metrics = start_director_metrics(
                self.am_getOption("MetricsPort", 0),
                self.am_getOption("MetricsHost", "127.0.0.1"),
                lambda url: self.log.notice("VMDirector metrics on", url),
            )
        except (ValueError, OSError) as exc:
            return S_ERROR(f"VMDirector MetricsPort: {exc}")
        self.backends = CEBackends(self.metrics, self.log)
        self.vmAccounting = VMAccounting(self.backends, self.log, apelDirectory, diracAccounting)
        return S_OK()

    def finalize(self):
        """The graceful exit: DELETE threads and cloud connections end with the agent."""
        if getattr(self, "backends", None) is not None:  # None: initialize failed before making them
            self.backends.close()
        return S_OK()

    def _sightingsFile(self) -> OrphanSightingsFile:
        return OrphanSightingsFile(self.am_getWorkDirectory())

    def _clients(self):
        """The database clients, made at the first cycle (a broken database fails a cycle, not the agent)."""
        if self.vmState is None:
            self.vmState = VMStateClient()
        if self.pilots is None:
            self.pilots = PilotRecords()

    # --- the cycle ---------------------------------------------------------------------------
    def execute(self):
        result = cloud_ces(self.sites, self.ceNames, self.ceTypes, self.vos)
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
            self.orphanSightings = self._sightingsFile().load(self.am_getPollingTime())
        reports = []
        # VMDB-wide, read once a cycle for every CE (not once per CE)
        self.replayedBootstraps = bootstrap_replayed(self.vmState, self.log) if ces else frozenset()
        with self.backends.one_listing_per_project():
            groups = self.backends.by_project([(ce, o.with_first_queue) for ce, o in sorted(ces.items())])
            with ThreadPoolExecutor(max_workers=max(1, min(self.projectsInParallel, len(groups))),
                                    thread_name_prefix="vmdirector-project") as pool:
                for served in pool.map(lambda group: self._serveProject(group, ces), groups):
                    reports += served
        if ces and not self.dryRun:
            self._sightingsFile().save(self.orphanSightings, self.log)
        skipped = sum(1 for r in reports if r.skipped)
        self.log.notice(
            "VMDirector cycle done",
            f"{len(reports)} CEs, {skipped} skipped, {sum(r.deleted for r in reports)} VMs deleted"
            + (" (dry run)" if self.dryRun else ""),
        )
        return S_OK()

    def _serveProject(self, group: list[str], ces: dict[str, CEParameters]) -> list[CEReport]:
        """The CEs of one cloud project, at once (they share its listing and DELETE threads);
        the project's listing starts at once, while its CEs read their databases."""
        workers = 1 if len(group) == 1 else min(self.cesInParallel, len(group))
        with ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix="vmdirector-ce") as pool:
            pool.submit(self.backends.start_listing, group[0], ces[group[0]].with_first_queue)
            if workers == 1:
                return [self._serveCE(ce, ces[ce]) for ce in group]
            return list(pool.map(lambda ce: self._serveCE(ce, ces[ce]), group))

    def _serveCE(self, ce: str, options: CEParameters) -> CEReport:
        """One CE's part of the cycle; its failure is its report's, never the other CEs'."""
        report = CEReport(ce)
        try:
            self._cycleCE(ce, options, report)
        except CENotServedThisCycle as exc:
            self.orphanSightings.pop(ce, None)  # sightings must come from consecutive cycles
            report.skipped = str(exc)
            self.log.warn("Skipping CE this cycle", f"{ce}: {exc}")
        except Exception as exc:  # one CE's bug or outage must not stop the others
            self.orphanSightings.pop(ce, None)
            report.skipped = f"unexpected error: {exc}"
            self.log.exception("Skipping CE this cycle", ce, lException=exc)
        self.log.notice("VMDirector CE", report.line())
        return report

    def _cycleCE(self, ce: str, options: CEParameters, report: CEReport):
        params = options.with_first_queue  # what the CE has once: credentials, listing, accounting
        # the databases first, read while the project's listing runs: a VM created since the
        # listing has a record and no VM this cycle, one created since the records a VM and no
        # record; decide() leaves both alone (the record's LostPilotGrace, an orphan's two
        # sightings past their grace)
        records = vm_records(self.vmState, ce, self.keptRecords)
        # and the pilots of the VMs the records say are live
        recorded = {pilot_reference(ce, name) for name, record in records.items() if record.deleted is None}
        pilots = self.pilots.records(ce, recorded)
        result = self.vmState.getBackoffs(ce=ce)
        if not result["OK"]:
            raise CENotServedThisCycle(f"cannot read backoffs: {result['Message']}")
        backoffs = {row["profile"]: BackoffState.from_record(row) for row in result["Value"]}
        recordedBootstraps = bootstraps(self.vmState, records)
        config, backend, vms = self.backends.listing(ce, params)
        thresholds, queueThresholds = self.thresholdOptions.per_queue(ce, options, config)
        owner = config.owner()
        vms = [vm for vm in vms if owner.owns(vm.owner)]
        report.vms = len(vms)
        now = self.clock()

        # the pilots of all listed VMs and of live records' VMs gone on their own, whatever their
        # status (a failed boot corrects the CE's Deleted)
        unread = {pilot_reference(ce, vm.name) for vm in vms} - recorded
        if unread:
            pilots.update(self.pilots.records(ce, unread))
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
            bootstrap_replayed=self.replayedBootstraps,
            bootstraps=recordedBootstraps,
        )
        decision = decide(view)
        self.orphanSightings[ce] = decision.orphan_sightings
        if self.dryRun:
            self._apply(ce, backend, decision, report, params, thresholds)
            return
        sent = SentDeletes(backend, self.backends.deletions(ce, config))
        sent.send(deletes_waiting_for_no_pilot(decision))  # under way while the states are written
        # a name's VM record is its kept VM's: a twin's state or id must not overwrite it
        record_states(self.vmState, split_twins(vms, records)[0], records, self.log, now)
        self._apply(ce, backend, decision, report, params, thresholds, sent)
        self.backends.deleted(ce, report.deleted)

    # --- applying the decision ---------------------------------------------------------------
    def _apply(self, ce: str, backend, decision, report: CEReport, params, thresholds: Thresholds,
               sent: SentDeletes | None = None):
        """Apply the decision (`sent`: its deletions already under way)."""
        if self.log.shown("INFO"):
            for action in decision.actions:
                self.log.info(f"{'Would apply' if self.dryRun else 'Applying'} on {ce}", repr(action))
        if self.dryRun:
            return
        failedPilots = set_pilot_statuses(decision, self.pilots, report, self.log)
        now = self.clock()  # VMDB's times of this cycle's deletions: the policy's clock
        ended = delete_vms(
            ce, backend, decision, failedPilots, self.vmState, self.metrics, report, self.log, now, sent=sent
        )
        ended |= close_gone_records(decision, self.vmState, self.log, now)
        self._applyBackoffs(ce, decision, report)
        names = to_account(decision, ended)
        if self.accounting:
            report.accounted = self.vmAccounting.account(self.vmState, ce, names, params, thresholds)
        else:
            self.vmAccounting.mark_handled(self.vmState, names)

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
