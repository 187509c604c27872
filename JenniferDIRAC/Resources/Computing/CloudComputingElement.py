r"""Cloud Computing Element: DIRAC pilots as cloud VMs, driven by DIRAC's own SiteDirector.

With JenniferDIRAC installed, every ``CEType = Cloud`` CE in the CS is served by this class
(it replaces DIRAC's ``CloudComputingElement`` of the same name). OpenStack clouds are reached
through openstacksdk, every other ``CloudType`` through apache-libcloud, as DIRAC does.

How it maps DIRAC's CE API onto a cloud
---------------------------------------
- ``submitJob(executable, proxy, n)``: n VMs created concurrently (at most ``MaxSubmitThreads``
  at once). Each VM gets a unique name ``jdirac-<uuid hex>`` chosen before the create call; the
  pilot reference is ``cloud://<CE name>/<VM name>`` and is the VM's ``PILOT_UUID``; the pilot
  stamp (32 lowercase hex) is its ``DIRAC_PILOT_STAMP``. Owner metadata (``jdirac-installation``,
  ``jdirac-ce``, ``jdirac-vo``, ``jdirac-stamp``, ...) marks the VM as this installation's and
  this CE's; nothing relies on the name prefix. A create whose outcome is uncertain (timeout,
  5xx) is looked up by its name before any retry, so a VM is never created twice blind (and a
  late twin is deleted after the batch); a VM reported in ERROR at creation is deleted, one that
  fails later is a Failed pilot. ``PilotStampDict`` is keyed by the pilot reference. Every VM
  that exists is returned, whatever fails beside it (a garbled answer, a failed lookup); a VM
  the cloud refused is recorded in VMDB as deleted with the typed ``FailureKind`` the backend
  read from the cloud's answer (the VMDirector's backoff reads the kind, never the text). When
  the cloud says a resolved image, flavor or network id no longer exists, the reference is
  resolved again at once and the refused creates are retried once with the new ids. The owner
  metadata carries the queue (``jdirac-queue``).
- ``getCEStatus`` / ``available``: its VMs from the shared listing (BUILD = waiting, ACTIVE =
  running) plus the project quota (instances, cores, RAM against the flavor, the only reference
  it resolves; -1 = unlimited),
  ``QuotaShare``, ``MaxStartingVMs`` and the backoff the VMDirector recorded in VMDB. A cloud
  outage returns S_ERROR (the SiteDirector then counts pilots from PilotAgentsDB).
- ``getJobStatus(refs)``: from the shared listing (below). BUILD -> Submitted, ACTIVE -> Running,
  SHUTOFF -> Done, ERROR -> Failed (the cloud's fault message is logged), no such VM -> Deleted,
  except a VM created less than ``LostPilotGrace`` ago (by this process, else per its VMDB
  record) that was never listed nor killed: Submitted (EC2 listings are eventually consistent;
  the VMDirector's lost-pilot rule, shared). Unknown only when the cloud cannot be reached.
- ``killJob(refs)``: a listing made now, then bulk delete; a VM already gone is a success.
- One listing serves many calls: the CEs of one cloud project in one process (same auth URL,
  project, region / compute endpoint and InstallationName) share one listing of the
  installation's VMs and one reading of the quota for ``ListingCacheSeconds``; each CE takes its
  own VMs from it. A SiteDirector cycle then costs about one listing and one ``/limits`` per
  project instead of two of each per CE. Creates and deletes made by this process update
  the held listing (a VM just created is never reported Deleted, a deleted one is DELETING; an
  uncertain outcome makes the next caller list again) and the quota is read again; concurrent callers wait for the
  listing under way instead of fetching again; a failed listing is not kept.
- ``getJobOutput(ref or "ref:::stamp")``: the VM's console log, followed by the logs the VM
  uploaded to the VM endpoint (kept in VMDB). What exists is returned when the rest is missing
  (Nova answers 409 for the console of a VM that never got a host, a deleted VM has none), with
  a ``not available`` section saying what is missing; S_ERROR only when nothing exists.
- ``cleanupPilots``: deletes only this CE's SHUTOFF / ERROR VMs whose pilots PilotAgentsDB already
  holds in a final state (the SiteDirector saw them end). In DIRAC 9.1 it runs before
  ``getJobStatus``, so deleting any other stopped VM here would turn a Done pilot into Deleted.
  Stuck, over-lifetime, zombie and orphan VMs are the VMDirector agent's work.

Every method returns S_OK/S_ERROR and never lets an exception reach the SiteDirector.

Configuration
-------------
Options are read at the CE level and may be overridden per queue, like every DIRAC CE option.

DIRAC's CloudCE options (same meaning):

CloudType
  (Required unless CloudsYamlCloud is set) ``OPENSTACK`` (openstacksdk), ``EC2`` or
  ``AZURE_ARM`` (libcloud), or the class path of a libcloud OpenStack, EC2 or Azure driver (or a
  subclass). Other providers (GCE, OpenNebula, ...) are refused as not supported.
Driver\_\*
  Options passed to the libcloud driver (prefix stripped). For ``CloudType = OPENSTACK`` the
  options of an existing DIRAC configuration are translated to keystoneauth / openstacksdk:
  ``Driver_ex_force_auth_url`` -> auth URL (``/v3`` appended to a bare Keystone URL),
  ``Driver_ex_force_auth_version`` (``3.x_password``, ``3.x_appcred``, ``3.x_oidc_access_token``,
  ``2.0_password``, served by Keystone v3) -> auth type, ``Driver_ex_tenant_name`` / ``Driver_ex_tenant_id`` -> project,
  ``Driver_ex_domain_name`` -> user domain, ``Driver_ex_tenant_domain_id`` -> project domain id,
  ``Driver_ex_force_service_region`` -> region, ``Driver_ex_force_base_url`` -> compute endpoint,
  ``Driver_ex_force_microversion`` -> compute microversion. With ``3.x_oidc_access_token`` they
  keep libcloud's meaning: ``Driver_ex_tenant_name`` is the federation protocol and
  ``Driver_ex_domain_name`` the project (name or id). Other ``Driver_`` options are logged as
  ignored.
CloudAuth
  Credentials ini file (DIRAC's format: ``[DEFAULT]`` or ``[<CE name>]`` with ``key`` /
  ``secret``; also ``auth_type`` and explicit keys, see Resources/Cloud/credentials.py). Default
  ``<DIRAC root>/etc/cloud.auth``. Must not be readable by group or others. Read again when it
  changes (inode, size or modification time) and after the cloud refuses the credentials: a
  rotated file needs no restart. OIDC refresh tokens that the provider rotates are kept in
  ``<CloudAuth>.<section>.oidc`` (0600, shared under a file lock by every process using the
  section; see Resources/Cloud/credentials.py).
Instance_Image, Instance_Flavor
  (Required) id, or ``name:<name>``. Names are resolved and cached for ``ReferenceCacheSeconds``;
  an image id goes to Nova as it is (no image service needed).
Instance_Networks
  Comma-separated ids or ``name:<name>``.
Instance_SSHKey
  Key pair name.
Context_Template
  Path of a cloud-init template (Jinja2) replacing the profile's template.
Context_ExtPackages
  Comma-separated extra packages for cloud-init to install.
Context_MaxLifetime
  Hard lifetime of a VM in seconds (default 1209600, two weeks): the VM powers itself off then.

New options:

CloudsYamlCloud, CloudsYamlFile
  Take the OpenStack cloud (auth, region, TLS) from this clouds.yaml entry; CloudsYamlFile
  defaults to openstacksdk's search path. Implies ``CloudType = OPENSTACK``.
AuthURL, ProjectName, ProjectID, ProjectDomainName, ProjectDomainID, UserDomainName, Protocol,
Interface
  Keystone settings written directly (they win over the translated ``Driver_`` options).
Region
  OpenStack region.
CACertificates
  CA bundle (file or directory) to verify the cloud's TLS certificates.
Instance_SecurityGroups
  Comma-separated security group names.
Instance_AvailabilityZone
  Availability zone; several, comma-separated, in order of preference.
Instance_Flavor (several)
  ``name:m1.large, name:m1.medium`` lists flavors in order of preference: the next VMs use the
  first (flavor, zone) the cloud has not answered "No valid host" / insufficient capacity for
  (each flavor in every zone before the next flavor). Nova reports it as an ERROR VM after the
  create was accepted, so the next cycle moves on; an EC2-like refusal moves the same VMs at
  once. Not a CE failure, no backoff; ``available()`` counts slots with the flavor that will be
  used and is 0 while every option is full. The pilot gets the cores of the flavor it landed on
  (``DIRAC_NUMBER_OF_PROCESSORS`` in its environment) and VMDB records them.
CapacityCacheSeconds
  Seconds a (cloud, flavor, zone) without capacity is skipped by every CE of the process
  (default 300, 0 to 86400).
Instance_Metadata
  Extra VM metadata, ``key=value, key=value`` (keys starting ``jdirac-`` are reserved).
Instance_ConfigDrive
  ``True`` to attach a config drive (default False).
QuotaShare
  Fraction of the project quota this CE may use, ``0.5`` or ``50%`` (default 1): a hard cap.
QuotaWeight, OthersQuotaWeight
  Weighted shares that lend (default: unset, QuotaShare alone): this CE is entitled to
  ``QuotaWeight / (QuotaWeight + OthersQuotaWeight)`` of the project's instances (of its cores
  counted in this flavor when instances are unlimited), everything else on the project to the
  rest. Within its share it takes free slots at once; beyond it only slots left free for a
  whole cycle while the others are not starting VMs; no VM is stopped to rebalance; in backoff
  it lends all (capacity.lending_slots).
MaxStartingVMs
  At most this many of the CE's VMs building at once (default: no cap beyond MaxWaitingJobs).
MaxSubmitThreads
  Concurrent create calls in one submission (default 8, at most 64).
MaxCreateAttempts
  Attempts per VM when the cloud fails or times out (default 3); each retry is preceded by a
  lookup of the VM's unique name.
HTTPTimeout
  Seconds before one cloud API request is abandoned (default 60).
MaxUserDataBytes
  Lower the cloud's user-data size limit (bytes after compression).
ListingCacheSeconds
  Seconds one listing of the project's VMs and one quota reading serve every CE of the same
  cloud project and installation in this process (default 10, at most 300; 0: every call lists
  and reads the quota itself). The calls of one SiteDirector cycle to a project's CEs come within
  seconds of each other while cycles are minutes apart, so 10 s covers a cycle and never spans
  two; a state change made outside this process (a VM stopping, the VMDirector deleting one) is
  seen at most that much later, which the SiteDirector, looking once a cycle, cannot tell.
ReferenceCacheSeconds
  Seconds a resolved image, flavor or network id is used before it is resolved again (default
  3600; 0: resolved for every use). Sites replace the image behind ``name:AlmaLinux-9``; a create
  refused because the id is gone resolves again at once whatever this says.
LostPilotGrace
  Seconds a VM this CE created may be missing from the listing before ``getJobStatus`` reports
  it Deleted (default 600; the VMDirector's option of the same name).
Quota_MaxInstances, Quota_MaxCores, Quota_MaxRAMMB
  libcloud clouds without a quota API: the limits to assume.
Context_EndpointURL, Context_TokenSecretFile
  The VM endpoint the VMs report to (boot log, heartbeats, pilot log, shutdown message) and the
  secret file its per-VM tokens are signed with; default ``/Resources/Cloud/Endpoint/URL`` and
  ``TokenSecretFile``. No URL: the VMs report nowhere.
Context_Profile
  Contextualization profile (``/Resources/Cloud/Profiles/<Name>``; shipped: BelleII, T2K-HyperK).
InstallationName
  Name of this DIRAC installation, written into every VM's owner metadata; defaults to
  ``/DIRAC/InstallationName``, else ``/DIRAC/Configuration/Name``. Two installations sharing a
  project must differ here.

DIRAC's ``MaxTotalJobs`` and ``MaxWaitingJobs`` apply as for any CE.

Example (an existing DIRAC OpenStack CloudCE, unchanged, plus two new options)::

  cloud.example.org
  {
    CEType = Cloud
    CloudType = OPENSTACK
    Driver_ex_force_auth_url = https://keystone.example.org:5000
    Driver_ex_force_auth_version = 3.x_password
    Driver_ex_tenant_name = belle
    Instance_Image = name:AlmaLinux-9
    Instance_Flavor = name:m1.large
    Instance_Networks = name:private
    QuotaShare = 0.5
    Context_Profile = BelleII
    Queues
    {
      default
      {
        MaxTotalJobs = 100
        MaxWaitingJobs = 10
      }
    }
  }
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Mapping
from datetime import datetime, timezone

from DIRAC import S_ERROR, S_OK
from DIRAC.Resources.Computing.CloudComputingElement import (
    CloudComputingElement as DIRACCloudComputingElement,
)
from DIRAC.WorkloadManagementSystem.Client import PilotStatus
from DIRAC.WorkloadManagementSystem.Client.ServerUtils import getPilotAgentsDB

from JenniferDIRAC.Resources.Cloud.capacity import Community, cloud_capacity, lending_slots
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import (
    CloudAuthError,
    CloudError,
    CloudUnreachable,
    ConfigurationError,
    FailureKind,
)
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, parse_reference, pilot_reference
from JenniferDIRAC.Resources.Cloud.sharedlisting import SharedProject, shared_project
from JenniferDIRAC.Resources.Cloud.submission import Submission, create_vms
from JenniferDIRAC.Resources.Cloud import placement as _placement
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import DEFAULT_LOST_PILOT_GRACE, still_appearing

#: Longest reason the CE records in VMDB for a VM it could not create (the kind is typed)
NOT_CREATED_REASON_CHARS = 250

#: Cloud VM state -> DIRAC pilot status.
PILOT_STATUS = {
    VMState.BUILD: PilotStatus.SUBMITTED,
    VMState.ACTIVE: PilotStatus.RUNNING,
    VMState.SHUTOFF: PilotStatus.DONE,
    VMState.ERROR: PilotStatus.FAILED,
    VMState.DELETING: PilotStatus.DELETED,
    # a state we cannot map (paused, suspended, host down...): the VM exists and is not final
    VMState.UNKNOWN: PilotStatus.RUNNING,
}


def _coresEnv(flavor: Flavor) -> dict[str, str]:
    """The pilot runs with the cores of the flavor it landed on (DIRAC's NumberOfProcessors)."""
    return {"DIRAC_NUMBER_OF_PROCESSORS": str(max(1, int(flavor.vcpus or 1)))}


def _asOption(option: str, resolve, reference):
    """resolve(reference); a reference the cloud does not know is a ConfigurationError naming the
    option, while an outage or refused credentials stay what they are."""
    try:
        return resolve(reference) if reference else reference
    except (CloudUnreachable, CloudAuthError):
        raise
    except CloudError as exc:
        raise ConfigurationError(option, str(exc)) from None


def _boundary(what: str):
    """S_OK/S_ERROR at the DIRAC boundary: no exception escapes into the SiteDirector."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            if self.cloudConfig is None:
                return S_ERROR(f"{what}: {self.ceName} is not configured: {self._configError}")
            try:
                return method(self, *args, **kwargs)
            except CloudError as exc:
                if isinstance(exc, CloudAuthError):
                    self._dropBackend()  # credentials are read again next time
                self.log.error(f"{what} failed", f"{self.ceName}: {exc}")
                return S_ERROR(f"{what} failed for {self.ceName}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the SiteDirector's thread pool must never see it
                self.log.exception(f"{what}: unexpected error", self.ceName, lException=exc)
                return S_ERROR(f"{what} failed for {self.ceName}: unexpected {type(exc).__name__}")

        return wrapper

    return decorate


class CloudComputingElement(DIRACCloudComputingElement):
    """Pilots as cloud VMs (see the module documentation)."""

    #: seconds before retry n of a failed create is n * retryDelay
    retryDelay = 2.0

    def __init__(self, ceName):
        self.cloudConfig: CloudCEConfig | None = None
        self._configError = "no parameters set"
        self._backend = None
        self._backendLock = threading.Lock()
        self._shared = None
        # VM name -> when this CE asked for it, until it is seen listed or killed; VM name ->
        # when it was seen or killed (then it is never given the "not listed yet" grace)
        self._appearingSince: dict[str, datetime] = {}
        self._settledAt: dict[str, datetime] = {}
        self._vmState = None
        self._vmStateLoaded = False
        self._vmStateWarned = False
        super().__init__(ceName)
        self.ceType = "Cloud"

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
        from JenniferDIRAC.Resources.Cloud.backends import credentials_changed, make_backend

        stale = None
        with self._backendLock:
            if self._backend is not None and credentials_changed(self._backend):
                # a rotated CloudAuth file / clouds.yaml: read it again, new session
                self.log.info("Cloud credentials changed, reading them again", self.ceName)
                stale, self._backend, self._shared = self._backend, None, None
            if self._backend is None:
                self._backend = make_backend(self.cloudConfig)
            backend = self._backend
        if stale is not None:
            try:
                stale.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                self.log.verbose("Closing the cloud connection failed", repr(exc))
        return backend

    def _dropBackend(self):
        with self._backendLock:
            backend, self._backend, self._shared = self._backend, None, None
        if backend is not None:
            try:
                backend.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                self.log.verbose("Closing the cloud connection failed", repr(exc))

    def shutdown(self):
        self._dropBackend()
        return S_OK()

    def _resolve(self, backend) -> tuple[str, Flavor, list[str]]:
        """Image id, flavor and network ids (the backend caches them for ReferenceCacheSeconds)."""
        config = self.cloudConfig
        image = _asOption("Instance_Image", backend.resolve_image, config.image)
        flavor = self._flavor(backend)
        networks = _asOption("Instance_Networks", backend.resolve_networks, list(config.networks))
        return image, flavor, networks if config.networks else []

    def _flavor(self, backend) -> Flavor:
        """The flavor the next VMs use: the first preferred one the cloud has capacity for."""
        open_ = self._openPlacements(backend)
        ref = open_[0].flavor if open_ else self.cloudConfig.flavor
        return _asOption("Instance_Flavor", backend.resolve_flavor, ref)

    def _lend(self, backend, vms, flavor, capacity):
        # QuotaWeight: this CE against everything else on the project (capacity.lending_slots), in
        # VMs of `flavor` out of the project's instance limit (its cores when instances are unlimited)
        quota = self._project(backend).quota(backend, self.cloudConfig.listing_cache_seconds)
        config = self.cloudConfig
        mine = len([vm for vm in vms if vm.state is not VMState.DELETING])
        total = quota.max_instances
        used = quota.used_instances
        if total is None or total < 0:
            if quota.max_cores is None or quota.max_cores < 0 or not flavor.vcpus:
                return capacity
            total, used = quota.max_cores // flavor.vcpus, quota.used_cores // flavor.vcpus
        others = max(0, used - mine)
        before = getattr(self, "_lending", None) or (others, 0)
        communities = [
            Community("me", config.quota_weight, mine, capacity.slots == 0 and capacity.limited_by == "backoff"),
            Community("others", config.others_quota_weight, others, started=max(0, others - before[0])),
        ]
        slots = lending_slots(total, "me", communities, before[1])
        free = max(0, total - used)
        self._lending = (others, max(0, free - min(slots, capacity.slots if capacity.slots is not None else slots)))
        if capacity.slots is None or slots < capacity.slots:
            return dataclasses.replace(capacity, slots=slots, limited_by="QuotaWeight")
        return capacity

    # --- flavors and zones that fall back ------------------------------------------------------
    def _cloudKey(self, backend):
        return backend.listing_scope() or ("ce", self.ceName)

    def _openPlacements(self, backend) -> list:
        config = self.cloudConfig
        options = _placement.preferences(config.flavors or (config.flavor,), config.availability_zones)
        return _placement.MEMORY.choose(self._cloudKey(backend), options)

    def _noCapacity(self, backend, where, why: str) -> None:
        """The cloud has no host for `where` now: skip it for CapacityCacheSeconds (no backoff)."""
        _placement.MEMORY.exhausted(self._cloudKey(backend), where, self.cloudConfig.capacity_cache_seconds)
        self.log.info(
            "No capacity for a flavor/zone, falling back to the next",
            f"{self.ceName}: {where.flavor} zone={where.zone or '-'}: {why[:200]}",
        )

    def _noteCapacityErrors(self, backend, vms) -> None:
        """Nova reports "No valid host" as an ERROR VM after accepting the create: the next cycle
        learns from the listing which flavor/zone that VM was placed on."""
        placed = getattr(self, "_placedOn", {})
        for vm in vms:
            if vm.state is VMState.ERROR and vm.fault_kind is FailureKind.CAPACITY and vm.name in placed:
                self._noCapacity(backend, placed.pop(vm.name), vm.fault)

    def _forget(self, backend, stale: set[str]) -> None:
        """The cloud said these resolved ids ("image", "flavor", "network") no longer exist."""
        config = self.cloudConfig
        refs = {"image": [config.image], "flavor": [config.flavor], "network": list(config.networks)}
        for what in sorted(stale):
            for ref in refs.get(what, []):
                backend.forget_reference(what, ref)
        self.log.info("Cloud ids no longer exist, resolving again", f"{self.ceName}: {', '.join(sorted(stale))}")

    def _owner(self, stamp: str = "") -> OwnerTags:
        """The owner tags of this CE's VMs, with the queue they are submitted for."""
        return dataclasses.replace(self.cloudConfig.owner(stamp), queue=str(self.ceParameters.get("Queue") or ""))

    def _lostPilotGrace(self) -> float:
        try:
            return max(0.0, float(self.ceParameters.get("LostPilotGrace", DEFAULT_LOST_PILOT_GRACE)))
        except (TypeError, ValueError):
            return DEFAULT_LOST_PILOT_GRACE

    def _project(self, backend) -> SharedProject:
        """The listing and quota this CE shares with the other CEs of its cloud project."""
        if self._shared is None:
            self._shared = shared_project(backend, self.cloudConfig.installation)
        return self._shared

    def _ownVMs(self, backend) -> Mapping[str, VM]:
        """This CE's VMs by name (read only), from ONE listing shared by the CEs of the project
        for ListingCacheSeconds."""
        project = self._project(backend)
        return project.vms(backend, self.cloudConfig.owner(), self.cloudConfig.listing_cache_seconds)

    def _freshOwnVMs(self, backend) -> dict[str, VM]:
        """This CE's VMs by name, from a listing made now (for deletions)."""
        return {vm.name: vm for vm in backend.list_vms(self.cloudConfig.owner())}

    def _changed(self, backend, vm_ids, errors):
        """VMs were deleted here: the shared listing shows them DELETING; if any delete failed
        or raised (`errors` None), it and the quota are read again."""
        try:
            if errors is None or errors:
                self._project(backend).invalidate()
            else:
                self._project(backend).deleted(vm_ids)
        except CloudError as exc:  # the project cannot even be identified: the cloud is down
            self.log.verbose("Shared listing not invalidated", f"{self.ceName}: {exc}")

    def _recordDeleted(self, vms, reason: str):
        """Close the VM records of VMs whose delete the cloud accepted (the first reason wins)."""
        if vms:
            self._vmdbCall("markVMsDeleted", {vm.name: reason for vm in vms})

    # --- VM database (optional) -------------------------------------------------------------
    def _vmdb(self):
        """The VMStateClient, or None when it cannot be used here (logged once)."""
        if not self._vmStateLoaded:
            self._vmStateLoaded = True
            try:
                from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

                self._vmState = VMStateClient()
            except Exception as exc:  # noqa: BLE001 - VMDB is optional for the CE
                self.log.warn("No VM database: VMs are not recorded and no backoff applies", repr(exc))
        return self._vmState

    def _vmdbCall(self, method: str, *args):
        """Value of a VMStateClient call, or None if it failed (the first failure is a warning)."""
        client = self._vmdb()
        if client is None:
            return None
        try:
            result = getattr(client, method)(*args)
        except Exception as exc:  # noqa: BLE001 - VMDB is optional: never lose the cloud's answer to it
            result = S_ERROR(f"unexpected {type(exc).__name__}: {exc}")
        if result["OK"]:
            self._vmStateWarned = False
            return result["Value"]
        if not self._vmStateWarned:
            self._vmStateWarned = True
            self.log.warn("VM database unavailable, carrying on without it", f"{method}: {result['Message']}")
        else:
            self.log.verbose("VM database still unavailable", f"{method}: {result['Message']}")
        return None

    def _backoffAllowance(self, vms) -> int | None:
        row = self._vmdbCall("getBackoff", self.ceName, self.cloudConfig.context_profile)
        if not row:
            return None
        from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import BackoffState, submission_allowance

        return submission_allowance(BackoffState.from_record(row), vms, datetime.now(timezone.utc))

    # --- DIRAC CE API -------------------------------------------------------------------------
    @_boundary("getCEStatus")
    def getCEStatus(self):
        backend = self._getBackend()
        vms = list(self._ownVMs(backend).values())
        self._noteCapacityErrors(backend, vms)
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
        if not self._openPlacements(backend):
            capacity = dataclasses.replace(capacity, slots=0, limited_by="no capacity for any flavor/zone")
        elif config.quota_weight is not None:
            capacity = self._lend(backend, vms, flavor, capacity)
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

    @_boundary("submitJob")
    def submitJob(self, executableFile, proxy, numberOfJobs=1):
        numberOfJobs = int(numberOfJobs)
        if numberOfJobs < 1:
            return S_ERROR(f"submitJob: cannot submit {numberOfJobs} VMs")
        config = self.cloudConfig
        with open(executableFile, encoding="utf-8") as handle:
            wrapper = handle.read()
        backend = self._getBackend()
        image, flavor, networks = self._resolve(backend)
        placements = self._openPlacements(backend)
        if not placements:
            return S_ERROR(f"submitJob: no capacity on {self.ceName} for any flavor/zone (CapacityCacheSeconds)")
        project = self._project(backend)  # known before the creates, to be invalidated after them

        names = [make_vm_name() for _ in range(numberOfJobs)]
        if self._vmdb() is not None:
            names = self._claimProbeIfNeeded(names)
            if not names:
                return self._submitted([], {})
        from JenniferDIRAC.Resources.Cloud.UserData import PilotContext

        profile = self._profile()
        endpointURL, tokens = self._endpoint()
        bootstrap = tokens is not None and self._vmdb() is not None
        if tokens is not None and not bootstrap:
            self.log.warn("No VM database: the pilot wrapper goes in user data (no bootstrap fetch)", self.ceName)
        specs, stamps, sealed, contexts = [], {}, {}, {}
        for name in names:
            reference, stamp = pilot_reference(self.ceName, name), make_stamp()
            token = tokens.issue_for_vm(name, config.context_max_lifetime) if tokens else ""
            if bootstrap:
                sealed[name], token = self._sealBootstrap(tokens, name, token, wrapper)
            context = PilotContext(
                pilot_reference=reference,
                pilot_stamp=stamp,
                wrapper=wrapper,
                vm_name=name,
                ce_name=self.ceName,
                site=config.site,
                vo=config.vo,
                max_lifetime=config.context_max_lifetime,
                endpoint_url=endpointURL,
                endpoint_token=token,
                extra_packages=config.context_ext_packages,
                bootstrap=bootstrap,
                extra_env=_coresEnv(flavor),
            )
            contexts[name] = context
            stamps[name] = stamp
            metadata = {**config.extra_metadata, **self._owner(stamp).to_metadata()}
            specs.append(
                VMSpec(
                    name=name,
                    image_id=image,
                    flavor_id=flavor.id,
                    user_data=self._userData(context, profile, backend.max_user_data_bytes),
                    metadata=metadata,
                    network_ids=list(networks),
                    key_name=config.ssh_key,
                    security_groups=list(config.security_groups),
                    availability_zone=placements[0].zone,
                    config_drive=config.config_drive,
                )
            )
        placed = getattr(self, "_placedOn", None)
        if placed is None:
            placed = self._placedOn = {}
        for spec in specs:
            placed[spec.name] = placements[0]
        while len(placed) > 10000:  # names whose VMs never went to ERROR
            placed.pop(next(iter(placed)))

        # The VM database knows each VM before the cloud does: a VM whose create outcome is
        # uncertain is then never mistaken for a stranger by the VMDirector.
        self._recordVMs({spec.name: "" for spec in specs}, stamps, flavor)
        unsealed = [name for name, data in sealed.items() if not self._vmdbCall("storeBootstrap", name, data)]
        if unsealed:
            reason = "its bootstrap (the pilot wrapper) could not be stored in VMDB"
            self._vmdbCall("markVMsDeleted", {n: {"reason": reason, "failure_kind": FailureKind.CLOUD_FAULT.value} for n in unsealed})
            return S_ERROR(f"submitJob: no VM created on {self.ceName}: {reason}")
        self._remember(appearing=names)
        submission = None
        try:
            submission = self._create(backend, specs)
            stale = {o.stale for o in submission.failed if o.stale}
            if stale:
                submission = self._retryWithFreshIds(backend, submission, stale)
            submission, flavors = self._fallBack(backend, submission, placements, flavor, contexts, profile)
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
            note = " (it may exist; the VMDirector reconciles it)" if outcome.uncertain else ""
            self.log.warn("VM not created", f"{self.ceName} {outcome.spec.name}: {outcome.error}{note}")
        notCreated = {
            o.spec.name: {
                "reason": o.error[:NOT_CREATED_REASON_CHARS],
                "failure_kind": (o.kind or FailureKind.CLOUD_FAULT).value,
            }
            for o in submission.failed
            if not o.uncertain
        }
        if notCreated:
            self._vmdbCall("markVMsDeleted", notCreated)
        created = submission.created
        if not created:
            errors = sorted({o.error for o in submission.failed})
            return S_ERROR(f"submitJob: no VM created on {self.ceName}: {'; '.join(errors)}")

        references = [pilot_reference(self.ceName, o.vm.name) for o in created]
        stampDict = {pilot_reference(self.ceName, o.vm.name): stamps[o.vm.name] for o in created}
        for landed in {id(f): f for f in flavors.values()}.values():
            self._recordVMs({o.vm.name: o.vm.id for o in created if flavors[o.spec.name] is landed}, stamps, landed)
        self.log.info("Created VMs", f"{self.ceName}: {len(created)} of {numberOfJobs}")
        return self._submitted(references, stampDict)

    def _fallBack(self, backend, submission: Submission, placements, flavor: Flavor, contexts, profile):
        """Creates the cloud refused for capacity go to the next flavor/zone (same names: none
        was created), each with the cores of its flavor in its user data. Returns the submission
        and {VM name: the flavor it was created with}."""
        flavors = {o.spec.name: flavor for o in submission.outcomes}
        where = placements[0]
        for following in placements[1:] + [None]:
            full = [o for o in submission.failed if o.kind is FailureKind.CAPACITY and not o.uncertain]
            if not full:
                break
            self._noCapacity(backend, where, full[0].error)
            if following is None:
                break
            try:
                flavor = _asOption("Instance_Flavor", backend.resolve_flavor, following.flavor)
            except CloudError as exc:
                self.log.warn("Fallback flavor not resolved", f"{self.ceName}: {following.flavor}: {exc}")
                continue
            retry = []
            for outcome in full:
                name = outcome.spec.name
                context = dataclasses.replace(contexts[name], extra_env=_coresEnv(flavor))
                retry.append(dataclasses.replace(
                    outcome.spec, flavor_id=flavor.id, availability_zone=following.zone,
                    user_data=self._userData(context, profile, backend.max_user_data_bytes),
                ))
                flavors[name] = flavor
                self._placedOn[name] = following
            again = {o.spec.name: o for o in self._create(backend, retry).outcomes}
            submission = Submission([again.get(o.spec.name, o) for o in submission.outcomes])
            where = following
        return submission, flavors

    def _create(self, backend, specs) -> Submission:
        config = self.cloudConfig
        return create_vms(
            backend,
            specs,
            config.owner(),
            max_threads=config.max_submit_threads,
            attempts=config.create_attempts,
            retry_delay=self.retryDelay,
        )

    def _retryWithFreshIds(self, backend, submission: Submission, stale: set[str]) -> Submission:
        """The cloud refused creates because a resolved id no longer exists: resolve again once
        and, if the ids changed, create those VMs once more (same names: none was created)."""
        self._forget(backend, stale)
        try:
            image, flavor, networks = self._resolve(backend)
        except CloudError as exc:
            self.log.warn("Resolving again failed", f"{self.ceName}: {exc}")
            return submission
        retry = {}
        for outcome in submission.failed:
            spec = outcome.spec
            if not outcome.stale:
                continue
            fresh = dataclasses.replace(spec, image_id=image, flavor_id=flavor.id, network_ids=list(networks))
            if (fresh.image_id, fresh.flavor_id, fresh.network_ids) != (spec.image_id, spec.flavor_id, spec.network_ids):
                retry[spec.name] = fresh
        if not retry:
            return submission
        again = {o.spec.name: o for o in self._create(backend, list(retry.values())).outcomes}
        return Submission([again.get(o.spec.name, o) for o in submission.outcomes])

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
        if state.phase(datetime.now(timezone.utc)) is QueuePhase.BACKING_OFF:
            self.log.info("CE in backoff, not submitting", f"{self.ceName}: until {state.until} ({state.reason})")
            return []
        claimed = self._vmdbCall("claimProbe", self.ceName, self.cloudConfig.context_profile, names[0])
        if not claimed:
            self.log.info("Probe VM already running after a backoff", self.ceName)
            return []
        self.log.info("Starting the probe VM after a backoff", f"{self.ceName}: {names[0]}")
        return names[:1]

    @staticmethod
    def _sealBootstrap(tokens, name: str, report_token: str, wrapper: str) -> tuple[bytes, str]:
        """(sealed wrapper and report token for VMDB, the one-time token for user data)."""
        from JenniferDIRAC.WorkloadManagementSystem.Security.VMBootstrap import bootstrap_body, seal

        bootstrap_token = tokens.issue_bootstrap(name)
        return seal(bootstrap_token, name, bootstrap_body(report_token, wrapper.encode("utf-8"))), bootstrap_token

    def _endpoint(self):
        """(URL, TokenAuthority) of the VM endpoint the VMs report to; ("", None) when none is
        configured (Context_EndpointURL / Context_TokenSecretFile, else /Resources/Cloud/Endpoint)."""
        from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import SecretFileError, TokenAuthority
        from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.settings import endpoint_settings

        settings = endpoint_settings(self.ceParameters)
        if not settings.enabled:
            if not getattr(self, "_noEndpointWarned", False):
                self._noEndpointWarned = True
                self.log.warn(
                    "No contextualization endpoint: the pilot wrapper and its proxy go in user data, readable by"
                    " every process of the VM",
                    f"{self.ceName}: set /Resources/Cloud/Endpoint/URL (or the CE's Context_EndpointURL)",
                )
            return "", None
        if not settings.token_secret_file:
            raise ConfigurationError("Context_TokenSecretFile", f"the VM endpoint {settings.url} needs a token secret file")
        try:
            return settings.url, TokenAuthority.from_secret_file(settings.token_secret_file)
        except SecretFileError as exc:
            raise ConfigurationError("Context_TokenSecretFile", str(exc)) from None

    def _profile(self):
        from JenniferDIRAC.Resources.Cloud.UserData import Profile, profile_from_cs

        name = self.cloudConfig.context_profile
        return profile_from_cs(name) if name else Profile(name="default")

    def _userData(self, context, profile, limit: int) -> bytes:
        from JenniferDIRAC.Resources.Cloud.UserData import pack_user_data, render_user_data

        text = render_user_data(context, profile, template_path=self.cloudConfig.context_template)
        if self.cloudConfig.context_template:
            from JenniferDIRAC.Resources.Cloud.UserData.templatecheck import check_ce_template

            # raises ConfigurationError (Context_Template) before any VM is created
            unchecked = check_ce_template(self.cloudConfig.context_template, text, profile.name)
            if unchecked:
                self.log.warn("Context_Template not checked against cloud-init's schema", f"{self.ceName}: {unchecked}")
        return pack_user_data(text, limit)

    def _recordVMs(self, ids: dict[str, str], stamps: dict[str, str], flavor: Flavor):
        """Record VMs in VMDB ({VM name: cloud id}; "" before the cloud has answered)."""
        if self._vmdb() is None:
            return
        config = self.cloudConfig
        now = datetime.now(timezone.utc)
        records = [
            {
                "vm_name": name,
                "vm_id": vm_id,
                "ce": self.ceName,
                "site": config.site,
                "vo": config.vo,
                "profile": config.context_profile,
                "pilot_reference": pilot_reference(self.ceName, name),
                "stamp": stamps[name],
                "flavor": flavor.name,
                "cores": flavor.vcpus,
                "ram_mb": flavor.ram_mb,
                "created": now,
            }
            for name, vm_id in ids.items()
        ]
        self._vmdbCall("recordVMs", records)

    def _namesOf(self, references) -> dict[str, str]:
        """{reference as given: VM name} for this CE's references; others are logged and left out."""
        names = {}
        for reference in references:
            try:
                ce, name = parse_reference(reference)
            except ValueError:
                self.log.warn("Not a pilot reference of a JenniferDIRAC cloud CE", reference)
                continue
            if ce != self.ceName:
                self.log.warn("Pilot reference of another CE", f"{reference} (this is {self.ceName})")
                continue
            names[reference] = name
        return names

    @_boundary("getJobStatus")
    def getJobStatus(self, jobIDList):
        names = self._namesOf(jobIDList)
        try:
            vms = self._ownVMs(self._getBackend())
        except CloudError as exc:
            self.log.warn("Cloud unreachable, pilot states unknown", f"{self.ceName}: {exc}")
            return S_OK({reference: PilotStatus.UNKNOWN for reference in names})
        self._remember(settled=[name for name in names.values() if name in vms and name in self._appearingSince])
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

    def _remember(self, appearing=(), settled=()):
        """Note VMs just asked for (`appearing`) and VMs seen listed or killed (`settled`);
        forget what is older than LostPilotGrace (VMDB's creation time decides then)."""
        now, grace = datetime.now(timezone.utc), self._lostPilotGrace()
        for memory in (self._appearingSince, self._settledAt):
            for name in [n for n, t in memory.items() if not still_appearing(t, now, grace)]:
                del memory[name]
        for name in settled:
            self._appearingSince.pop(name, None)
            self._settledAt[name] = now
        for name in appearing:
            self._appearingSince[name] = now

    def _stillAppearing(self, missing: list[str]) -> set[str]:
        """The unlisted VMs that may just not be listed yet: created less than LostPilotGrace
        ago (this CE's memory of its submissions, else the VMDB record), never seen listed nor
        killed by this CE, and not recorded as deleted."""
        now, grace = datetime.now(timezone.utc), self._lostPilotGrace()
        unknown = [n for n in missing if n not in self._appearingSince and n not in self._settledAt]
        born = {n: self._appearingSince[n] for n in missing if n in self._appearingSince}
        for record in (self._vmdbCall("getVMs", self.ceName, unknown) or []) if unknown else []:
            created = record.get("created")
            if record.get("deleted") is None and created is not None:
                born[record.get("vm_name")] = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
        return {name for name, when in born.items() if still_appearing(when, now, grace)}

    @_boundary("killJob")
    def killJob(self, jobIDList, reason: str = "killed by the CE"):
        """Delete the VMs of these pilots; ``reason`` is what their VM records keep."""
        names = self._namesOf(jobIDList)
        backend = self._getBackend()
        vms = self._freshOwnVMs(backend)
        self._remember(settled=names.values())
        ids = [vms[name].id for name in names.values() if name in vms]
        errors = None
        try:
            errors = backend.delete_vms(ids) if ids else {}
        finally:
            if ids:
                self._changed(backend, ids, errors)
        killed = [vms[name] for name in names.values() if name in vms and vms[name].id not in errors]
        self._recordDeleted(killed, reason)
        if errors:
            detail = "; ".join(f"{vm_id}: {error}" for vm_id, error in sorted(errors.items()))
            return S_ERROR(f"killJob: {len(errors)} VM(s) not deleted on {self.ceName}: {detail}")
        self.log.info("Deleted VMs", f"{self.ceName}: {len(ids)} ({len(names) - len(ids)} already gone)")
        return S_OK()

    @_boundary("getJobOutput")
    def getJobOutput(self, jobID, workingDirectory=None):
        names = self._namesOf([jobID])
        if not names:
            return S_ERROR(f"getJobOutput: {jobID} is not a pilot of {self.ceName}")
        name = names[jobID]
        sections, missing = [], []
        try:
            backend = self._getBackend()
            vm = backend.find_vm_by_name(name, self.cloudConfig.owner())
            if vm is None:
                missing.append("console log: the VM no longer exists")
            else:
                # Nova answers 409 for a VM that never got a host (ERROR, BUILD)
                sections.append(f"==== console log of {name} ====\n{backend.console_log(vm.id)}")
        except CloudError as exc:
            missing.append(f"console log: {exc}")
        logs = self._vmdbCall("getLogs", name) or {}
        for kind in sorted(logs):
            text = logs[kind].decode("utf-8", errors="replace")
            sections.append(f"==== {kind} (uploaded by {name}) ====\n{text}")
        if not logs:
            missing.append("uploaded logs: none in the VM database")
        if not sections:
            return S_ERROR(f"getJobOutput: nothing to return for VM {name} ({'; '.join(missing)})")
        if missing:
            sections.append("==== not available ====\n" + "\n".join(missing))
        return S_OK(("\n".join(sections), ""))

    @_boundary("cleanupPilots")
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
        ids, errors = [stopped[ref].id for ref in seen], None
        try:
            errors = backend.delete_vms(ids)
        finally:
            self._changed(backend, ids, errors)
        for vm_id, error in errors.items():
            self.log.warn("Could not delete a stopped VM", f"{self.ceName} {vm_id}: {error}")
        # Close the records of what this CE deleted: the VMDirector, which never sees these
        # VMs listed again, accounts them at once instead of after LostPilotGrace.
        self._recordDeleted(
            [stopped[ref] for ref in seen if stopped[ref].id not in errors], "stopped VM of a final pilot"
        )
        deleted = len(seen) - len(errors)
        self.log.info("Deleted stopped VMs of final pilots", f"{self.ceName}: {deleted}")
        return S_OK(deleted)
