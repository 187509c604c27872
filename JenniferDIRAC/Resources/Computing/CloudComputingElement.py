"""Cloud Computing Element: DIRAC pilots as cloud VMs, driven by DIRAC's own SiteDirector.

With JenniferDIRAC installed, every ``CEType = Cloud`` CE in the CS is served by this class
(it replaces DIRAC's ``CloudComputingElement`` of the same name). OpenStack clouds are reached
through openstacksdk, every other ``CloudType`` through apache-libcloud, as DIRAC does.

This module is the DIRAC shell: DIRAC's CE API with S_OK/S_ERROR, never an exception into the
SiteDirector, over the parts in ``CloudCE/`` and the cloud access in ``Resources/Cloud``. How each
method maps onto a cloud, and every CS option with its default: docs/CE-OPTIONS.md.

About 440 lines because DIRAC's CE API is one class: its methods, each turning the parts'
answers into DIRAC's S_OK shapes (PilotStampDict, CloudSlots, pilot states), stay together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone

from DIRAC import S_ERROR, S_OK
from DIRAC.Resources.Computing.CloudComputingElement import (
    CloudComputingElement as DIRACCloudComputingElement,
)
from DIRAC.WorkloadManagementSystem.Client import PilotStatus
from DIRAC.WorkloadManagementSystem.Client.ServerUtils import getPilotAgentsDB

from JenniferDIRAC.Resources.Cloud.capacity import cloud_capacity
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudError, ConfigurationError, FailureKind
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.sharedlisting import SharedProject
from JenniferDIRAC.Resources.Computing.CloudCE import pilotrecords, resolution
from JenniferDIRAC.Resources.Computing.CloudCE.backendholder import BackendHolder
from JenniferDIRAC.Resources.Computing.CloudCE.boundary import dirac_boundary
from JenniferDIRAC.Resources.Computing.CloudCE.creation import Creation
from JenniferDIRAC.Resources.Computing.CloudCE.joboutput import pilot_output
from JenniferDIRAC.Resources.Computing.CloudCE.lending import QuotaLending, installation_usage
from JenniferDIRAC.Resources.Computing.CloudCE.pilotdata import PilotUserData, seal_bootstrap
from JenniferDIRAC.Resources.Computing.CloudCE.pilotoptions import with_flavor_processors
from JenniferDIRAC.Resources.Computing.CloudCE.pilotstatus import PILOT_STATUS, own_vm_names
from JenniferDIRAC.Resources.Computing.CloudCE.pilotvms import PilotVMDesign
from JenniferDIRAC.Resources.Computing.CloudCE.placements import Placements
from JenniferDIRAC.Resources.Computing.CloudCE.vmstate import VMStateAdapter


class CloudComputingElement(DIRACCloudComputingElement):
    """Pilots as cloud VMs (docs/CE-OPTIONS.md)."""

    #: seconds before retry n of a failed create is n * retryDelay
    retryDelay = 2.0
    #: the backoff checks' now and the times the CE writes into VMDB; tests share the cloud's
    clock = staticmethod(lambda: datetime.now(timezone.utc))

    #: (sealed wrapper and report token for VMDB, the one-time token for user data)
    _sealBootstrap = staticmethod(seal_bootstrap)

    def __init__(self, ceName):
        self.cloudConfig: CloudCEConfig | None = None
        self._configError = "no parameters set"
        super().__init__(ceName)
        self.ceType = "Cloud"
        self._backends = BackendHolder(self.log, ceName)
        self._vmState = VMStateAdapter(self.log)
        self._recent = pilotrecords.RecentPilots(lambda: self.clock())
        self._placements = Placements(self.log, ceName, self._vmdbCall)  # VMCapacity: every process
        self._lending = QuotaLending()
        self._pilotData = PilotUserData(self.log, ceName)

    # --- configuration and cloud access -----------------------------------------------------
    def _reset(self):
        """Called by setParameters: (re)build the typed configuration from ceParameters."""
        try:
            config = CloudCEConfig.from_ce_parameters(self.ceName, self.ceParameters)
        except ConfigurationError as exc:
            self.cloudConfig, self._configError = None, str(exc)
            self.log.error("Invalid cloud CE configuration", f"{self.ceName}: {exc}")
            return S_ERROR(f"{self.ceName}: {exc}")
        if config != self.cloudConfig:
            self._dropBackend()
            self.cloudConfig = config
            for option, problem in config.unknown_options:
                self.log.warn(f"CS option {option}: {problem}", self.ceName)
        if config.ignored_driver_options:
            self.log.warn(
                "Driver options not used with openstacksdk", f"{self.ceName}: {', '.join(config.ignored_driver_options)}"
            )
        return S_OK()

    def _getBackend(self):
        return self._backends.get(self.cloudConfig)

    def _dropBackend(self):
        self._backends.drop()

    def shutdown(self):
        self._dropBackend()
        return S_OK()

    def _project(self, backend) -> SharedProject:
        """The listing and quota this CE shares with the other CEs of its cloud project."""
        return self._backends.project(backend, self.cloudConfig.installation)

    def _ownVMs(self, backend) -> Mapping[str, VM]:
        """This CE's VMs by name (read only), from ONE listing shared by the CEs of the project
        for ListingCacheSeconds."""
        project = self._project(backend)
        project.view.full_resync_seconds = self.cloudConfig.full_resync_seconds
        return project.vms(backend, self.cloudConfig.owner(), self.cloudConfig.listing_cache_seconds)

    def _freshOwnVMs(self, backend) -> dict[str, VM]:
        """This CE's VMs by name, from a listing made now (for deletions)."""
        return {vm.name: vm for vm in backend.list_vms(self.cloudConfig.owner())}

    def _delete(self, backend, vms: list[VM], reason: str) -> dict[str, str]:
        """Delete `vms` ({VM id: error} of those not deleted): the shared listing shows it, and the
        VM records of the deleted ones are closed with `reason` (the first reason wins)."""
        ids, errors = [vm.id for vm in vms], None
        if not ids:
            return {}
        try:
            errors = backend.delete_vms(ids)
        finally:
            self._showDeletesInListing(backend, ids, errors)
        deleted = [vm for vm in vms if vm.id not in errors]
        if deleted:
            self._vmdbCall("markVMsDeleted", {vm.name: reason for vm in deleted}, "", self.clock())
        return errors

    def _showDeletesInListing(self, backend, vm_ids, errors):
        """VMs were deleted here: the shared listing shows them DELETING; if any delete failed
        or raised (`errors` None), it and the quota are read again."""
        try:
            if errors is None or errors:
                self._project(backend).invalidate()
            else:
                self._project(backend).deleted(vm_ids)
        except CloudError as exc:  # the project cannot even be identified: the cloud is down
            self.log.verbose("Shared listing not invalidated", f"{self.ceName}: {exc}")

    def _creation(self, backend) -> Creation:
        return Creation(backend, self.cloudConfig, self.log, self._placements, self.retryDelay)

    def _flavor(self, backend) -> Flavor:
        """The flavor the next VMs use: the first preferred one the cloud has capacity for."""
        return resolution.resolve_flavor(backend, self._placements.next_flavor(backend, self.cloudConfig))

    def _owner(self, stamp: str = "") -> OwnerTags:
        """The owner tags of this CE's VMs, with the queue they are submitted for."""
        return dataclasses.replace(self.cloudConfig.owner(stamp), queue=str(self.ceParameters.get("Queue") or ""))

    # --- VM database (optional) -------------------------------------------------------------
    def _vmdb(self):
        """The VMStateClient, or None when it cannot be used here (logged once)."""
        return self._vmState.client()

    def _vmdbCall(self, method: str, *args):
        """Value of a VMStateClient call, or None if it failed (the first failure is a warning)."""
        return self._vmState.call(method, *args)

    def _recordVMs(self, ids: dict[str, str], stamps: dict[str, str], flavor: Flavor):
        """Record VMs in VMDB ({VM name: cloud id}; "" before the cloud has answered)."""
        if self._vmdb() is None:
            return
        self._vmdbCall("recordVMs", pilotrecords.vm_records(self.cloudConfig, ids, stamps, flavor, self.clock()))

    def _remember(self, appearing=(), settled=()):
        """Note VMs just asked for and VMs seen listed or killed (pilotrecords.RecentPilots)."""
        self._recent.remember(pilotrecords.lost_pilot_grace(self.ceParameters), appearing, settled)

    def _stillAppearing(self, missing: list[str]) -> set[str]:
        """The unlisted VMs that may just not be listed yet (within LostPilotGrace)."""
        return self._recent.still_appearing(
            pilotrecords.lost_pilot_grace(self.ceParameters), missing, lambda names: self._vmdbCall("getVMs", self.ceName, names)
        )

    def _backoffAllowance(self, vms) -> int | None:
        row = self._vmdbCall("getBackoff", self.ceName, self.cloudConfig.context_profile)
        if not row:
            return None
        from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import BackoffState, submission_allowance

        return submission_allowance(BackoffState.from_record(row), vms, self.clock())

    # --- DIRAC CE API -------------------------------------------------------------------------
    @dirac_boundary("getCEStatus")
    def getCEStatus(self):
        backend = self._getBackend()
        vms = list(self._ownVMs(backend).values())
        self._placements.note_capacity_errors(backend, self.cloudConfig, vms)
        flavor = self._flavor(backend)  # what one VM costs; image and networks are not needed
        config = self.cloudConfig
        capacity = cloud_capacity(
            vms,
            self._project(backend).quota(backend, config.listing_cache_seconds),
            flavor,
            quota_share=config.quota_share,
            max_starting=config.max_starting_vms,
            backoff_allowance=self._backoffAllowance(vms),
        )
        if not self._placements.open(backend, config):
            capacity = dataclasses.replace(capacity, slots=0, limited_by="no capacity for any flavor/zone")
        elif config.quota_weight is not None:
            quota = self._project(backend).quota(backend, config.listing_cache_seconds)
            usage = None
            if config.installation_quota_weights:
                usage = installation_usage(backend, self.ceName, config.listing_cache_seconds)
            capacity = self._lending.apply(config, quota, vms, flavor, capacity, usage)
        result = S_OK()
        result["SubmittedJobs"] = 0
        result["RunningJobs"] = capacity.running
        result["WaitingJobs"] = capacity.waiting
        result["CloudSlots"] = capacity.slots  # None: the cloud sets no limit
        result["CloudSlotsLimitedBy"] = capacity.limited_by
        self.log.verbose(
            "Cloud CE status",
            f"{self.ceName}: waiting={capacity.waiting} running={capacity.running} "
            f"slots={'unlimited' if capacity.slots is None else capacity.slots} {capacity.limited_by}",
        )
        return result

    def available(self):
        """DIRAC's MaxTotalJobs / MaxWaitingJobs logic, capped by what the cloud can take."""
        result = super().available()
        if result["OK"]:
            slots = result.get("CloudSlots")
            if slots is not None and result["Value"] > slots:
                self.log.info("Cloud capacity limits submission", f"{self.ceName}: {slots} ({result['CloudSlotsLimitedBy']})")
                result["Value"] = slots
        return result

    @dirac_boundary("submitJob")
    def submitJob(self, executableFile, proxy, numberOfJobs=1):
        numberOfJobs = int(numberOfJobs)
        if numberOfJobs < 1:
            return S_ERROR(f"submitJob: cannot submit {numberOfJobs} VMs")
        config = self.cloudConfig
        with open(executableFile, encoding="utf-8") as handle:
            wrapper = self._withFlavorProcessors(handle.read())
        backend = self._getBackend()
        creation = self._creation(backend)
        image, flavor, networks = creation.resolve()
        placements = self._placements.open(backend, config)
        if not placements:
            return S_ERROR(f"submitJob: no capacity on {self.ceName} for any flavor/zone (CapacityCacheSeconds)")
        project = self._project(backend)  # known before the creates, to be invalidated after them

        names = [make_vm_name() for _ in range(numberOfJobs)]
        if self._vmdb() is not None:
            names = self._claimProbeIfNeeded(names)
            if not names:
                return self._submitted([], {})
        profile = self._pilotData.profile(config)
        endpointURL, tokens = self._pilotData.endpoint(self.ceParameters)
        bootstrap = tokens is not None and self._vmdb() is not None
        if tokens is not None and not bootstrap:
            self.log.warn("No VM database: the pilot wrapper goes in user data (no bootstrap fetch)", self.ceName)
        design = PilotVMDesign(
            config, self._owner(), wrapper, endpointURL, tokens, bootstrap,
            render=lambda context: self._pilotData.render(config, context, profile, backend.max_user_data_bytes),
            seal=self._sealBootstrap,
        )
        vms = {name: design.vm(name, image, flavor, networks, placements[0].zone) for name in names}
        specs = [vm.spec for vm in vms.values()]
        stamps = {name: vm.stamp for name, vm in vms.items()}
        sealed = {name: vm.sealed for name, vm in vms.items() if vm.sealed is not None}
        self._placements.place([spec.name for spec in specs], placements[0])

        # The VM database knows each VM before the cloud does: a VM whose create outcome is
        # uncertain is then never mistaken for a stranger by the VMDirector.
        self._recordVMs({spec.name: "" for spec in specs}, stamps, flavor)
        unsealed = [name for name, data in sealed.items() if not self._vmdbCall("storeBootstrap", name, data)]
        if unsealed:
            reason = "its bootstrap (the pilot wrapper) could not be stored in VMDB"
            self._vmdbCall("markVMsDeleted", {n: {"reason": reason, "failure_kind": FailureKind.CLOUD_FAULT.value} for n in unsealed}, "", self.clock())
            return S_ERROR(f"submitJob: no VM created on {self.ceName}: {reason}")
        self._remember(appearing=names)
        submission = None
        try:
            submission = creation.create(specs)
            stale = {o.stale for o in submission.failed if o.stale}
            if stale:
                submission = creation.retry_with_fresh_ids(submission, stale)
            submission, flavors = creation.fall_back(submission, placements, flavor, design, vms)
        finally:
            # before any reference is returned: the shared listing holds the new VMs (a listing
            # that may predate the create is never used again); an uncertain create: listed again
            try:
                if submission is None or any(o.uncertain or o.recreated for o in submission.outcomes):
                    project.invalidate()
                else:
                    project.created([o.vm for o in submission.created])
            except Exception as exc:  # noqa: BLE001 - the VMs exist: return them whatever happens here
                self.log.warn("Shared listing not invalidated", f"{self.ceName}: {exc!r}")
        for outcome in submission.failed:
            note = " (it may exist: its pilot is returned, the next listing settles it)" if outcome.uncertain else ""
            self.log.warn("VM not created" if not note else "VM create uncertain", f"{self.ceName} {outcome.spec.name}: {outcome.error}{note}")
        notCreated = pilotrecords.not_created(submission.failed)
        if notCreated:
            self._vmdbCall("markVMsDeleted", notCreated, "", self.clock())
        uncertain = pilotrecords.create_uncertain(submission.failed)
        if uncertain:
            self._vmdbCall("setVMStates", uncertain, self.clock())
        created = submission.created
        if not created and not uncertain:
            errors = sorted({o.error for o in submission.failed})
            return S_ERROR(f"submitJob: no VM created on {self.ceName}: {'; '.join(errors)}")

        # an uncertain VM's pilot is DIRAC's like the others': if the VM appears it is the
        # pilot's, if it never does the VMDirector aborts the pilot after LostPilotGrace
        returned = [o.vm.name for o in created] + list(uncertain)
        references = [pilot_reference(self.ceName, name) for name in returned]
        stampDict = {pilot_reference(self.ceName, name): stamps[name] for name in returned}
        for landed in {id(f): f for f in flavors.values()}.values():
            self._recordVMs({o.vm.name: o.vm.id for o in created if flavors[o.spec.name] is landed}, stamps, landed)
        self.log.info("Created VMs", f"{self.ceName}: {len(created)} of {numberOfJobs}, {len(uncertain)} uncertain")
        return self._submitted(references, stampDict)

    def _withFlavorProcessors(self, wrapper: str) -> str:
        """DIRAC's pilot wrapper, its pilot started with the cores of its VM's flavor (pilotoptions)."""
        changed = with_flavor_processors(wrapper)
        if changed is None:
            self.log.verbose("Not DIRAC's pilot wrapper: its cores only in DIRAC_NUMBER_OF_PROCESSORS", self.ceName)
            return wrapper
        return changed

    @staticmethod
    def _submitted(references, stampDict):
        result = S_OK(references)
        result["PilotStampDict"] = stampDict
        return result

    def _claimProbeIfNeeded(self, names: list[str]) -> list[str]:
        """After a backoff, only one probe VM may start (claimed atomically in VMDB)."""
        from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import BackoffState, QueuePhase

        row = self._vmdbCall("getBackoff", self.ceName, self.cloudConfig.context_profile)
        if not row:
            return names
        state = BackoffState.from_record(row)
        if state.phase(self.clock()) is QueuePhase.BACKING_OFF:
            self.log.info("CE in backoff, not submitting", f"{self.ceName}: until {state.until} ({state.reason})")
            return []
        claimed = self._vmdbCall("claimProbe", self.ceName, self.cloudConfig.context_profile, names[0])
        if not claimed:
            self.log.info("Probe VM already running after a backoff", self.ceName)
            return []
        self.log.info("Starting the probe VM after a backoff", f"{self.ceName}: {names[0]}")
        return names[:1]

    def _namesOf(self, references) -> dict[str, str]:
        """{reference as given: VM name} for this CE's references; others are logged and left out."""
        return own_vm_names(self.ceName, references, self.log)

    @dirac_boundary("getJobStatus")
    def getJobStatus(self, jobIDList):
        names = self._namesOf(jobIDList)
        try:
            vms = self._ownVMs(self._getBackend())
        except CloudError as exc:
            self.log.warn("Cloud unreachable, pilot states unknown", f"{self.ceName}: {exc}")
            return S_OK({reference: PilotStatus.UNKNOWN for reference in names})
        self._remember(settled=[name for name in names.values() if name in vms and name in self._recent.appearing_since])
        appearing = self._stillAppearing([name for name in names.values() if name not in vms])
        states = {}
        for reference, name in names.items():
            vm = vms.get(name)
            if vm is None:
                # a VM created moments ago may not be listed yet (EC2 listings are eventually
                # consistent): Submitted, not the final Deleted, within LostPilotGrace
                states[reference] = PilotStatus.SUBMITTED if name in appearing else PilotStatus.DELETED
                continue
            states[reference] = PILOT_STATUS[vm.state]
            if vm.state is VMState.ERROR:
                self.log.warn("VM in ERROR", f"{self.ceName} {vm.name}: {vm.fault or 'no fault given'}")
        return S_OK(states)

    @dirac_boundary("killJob")
    def killJob(self, jobIDList, reason: str = "killed by the CE"):
        """Delete the VMs of these pilots; ``reason`` is what their VM records keep."""
        names = self._namesOf(jobIDList)
        backend = self._getBackend()
        vms = self._freshOwnVMs(backend)
        self._remember(settled=names.values())
        ids = [vms[name].id for name in names.values() if name in vms]
        errors = self._delete(backend, [vms[name] for name in names.values() if name in vms], reason)
        if errors:
            detail = "; ".join(f"{vm_id}: {error}" for vm_id, error in sorted(errors.items()))
            return S_ERROR(f"killJob: {len(errors)} VM(s) not deleted on {self.ceName}: {detail}")
        self.log.info("Deleted VMs", f"{self.ceName}: {len(ids)} ({len(names) - len(ids)} already gone)")
        return S_OK()

    @dirac_boundary("getJobOutput")
    def getJobOutput(self, jobID, workingDirectory=None):
        names = self._namesOf([jobID])
        if not names:
            return S_ERROR(f"getJobOutput: {jobID} is not a pilot of {self.ceName}")
        name = names[jobID]

        def console():
            backend = self._getBackend()
            vm = backend.find_vm_by_name(name, self.cloudConfig.owner())
            # Nova answers 409 for a VM that never got a host (ERROR, BUILD)
            return None if vm is None else backend.console_log(vm.id)

        output, missing = pilot_output(name, console, self._vmdbCall("getLogs", name) or {})
        if not output:
            return S_ERROR(f"getJobOutput: nothing to return for VM {name} ({'; '.join(missing)})")
        return S_OK((output, ""))

    @dirac_boundary("cleanupPilots")
    def cleanupPilots(self):
        backend = self._getBackend()
        stopped = {
            pilot_reference(self.ceName, vm.name): vm
            for vm in self._ownVMs(backend).values()
            if vm.state in (VMState.SHUTOFF, VMState.ERROR)
        }
        if not stopped:
            return S_OK(0)
        result = getPilotAgentsDB().getPilotInfo(list(stopped))
        if not result["OK"]:
            self.log.verbose("No pilot information for stopped VMs, leaving them", result["Message"])
            return S_OK(0)
        seen = [
            ref for ref, info in result["Value"].items()
            if ref in stopped and info.get("Status") in PilotStatus.PILOT_FINAL_STATES
        ]
        if not seen:
            return S_OK(0)
        # the VMDirector, which never sees these VMs listed again, accounts them at once
        errors = self._delete(backend, [stopped[ref] for ref in seen], "stopped VM of a final pilot")
        for vm_id, error in errors.items():
            self.log.warn("Could not delete a stopped VM", f"{self.ceName} {vm_id}: {error}")
        deleted = len(seen) - len(errors)
        self.log.info("Deleted stopped VMs of final pilots", f"{self.ceName}: {deleted}")
        return S_OK(deleted)
