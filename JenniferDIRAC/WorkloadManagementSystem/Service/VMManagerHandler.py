"""VMManager: the DIPS service in front of VMDB, for CEs, agents and commands that run on hosts
without the database credentials.

Start it with ``dirac-service WorkloadManagement/VMManager``. Callers use
``JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient``, never this module.

Authorization defaults are in the code (``auth_<method>``, as DIRAC's own services have them), so
that a service started without an Authorization section in the CS is not open to every user,
pilot and unregistered DN: writes need ``Operator`` (the admin commands, run by operators) or
``TrustedHost`` (the hosts running the SiteDirector with its CEs, the VMDirector and the VM
endpoint); reads also ``JobAdministrator``. A method's rule in the CS
(``.../VMManager/Authorization/<method>``) still overrides its default, as everywhere in DIRAC.

Times travel as naive UTC datetimes; log contents as bytes (base64 in DIRAC's JSON encoding).
"""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.DISET.RequestHandler import RequestHandler
from DIRAC.Core.Security.Properties import JOB_ADMINISTRATOR, OPERATOR, TRUSTED_HOST
from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader

#: The getVMs filters a caller may send.
VM_FILTERS = frozenset(
    ("ce", "names", "active_only", "states", "site", "vo", "pilot_references", "unaccounted_only", "limit")
)


#: Who may change VMDB, and who may read it.
WRITERS = [OPERATOR, TRUSTED_HOST]
READERS = [OPERATOR, TRUSTED_HOST, JOB_ADMINISTRATOR]


def as_bytes(content) -> bytes:
    """Log content as sent: bytes with DIRAC's JSON encoding, str with the older DEncode."""
    if isinstance(content, str):
        return content.encode("utf-8", errors="surrogateescape")
    return bytes(content)


class VMManagerHandler(RequestHandler):
    @classmethod
    def initializeHandler(cls, serviceInfoDict):
        result = ObjectLoader().loadObject("WorkloadManagementSystem.DB.VMDB", "VMDB")
        if not result["OK"]:
            return result
        try:
            cls.vmDB = result["Value"](parentLogger=cls.log)
        except RuntimeError as excp:
            return S_ERROR(f"Can't connect to VMDB: {excp}")
        return S_OK()

    # --- VMs ---------------------------------------------------------------------------------
    types_recordVMs = [list]
    auth_recordVMs = WRITERS

    @classmethod
    def export_recordVMs(cls, records):
        return cls.vmDB.recordVMs(records)

    types_setVMStates = [dict]
    auth_setVMStates = WRITERS

    @classmethod
    def export_setVMStates(cls, states, when=None):
        return cls.vmDB.setVMStates(states, when)

    types_markVMsDeleted = [[list, dict]]
    auth_markVMsDeleted = WRITERS

    @classmethod
    def export_markVMsDeleted(cls, names, reason="", when=None):
        return cls.vmDB.markVMsDeleted(names, reason, when)

    types_getVMs = [dict]
    auth_getVMs = READERS

    @classmethod
    def export_getVMs(cls, filters):
        unknown = set(filters) - VM_FILTERS
        if unknown:
            return S_ERROR(f"getVMs: unknown filter(s) {', '.join(sorted(unknown))}")
        return cls.vmDB.getVMs(**filters)

    types_getVMChanges = [str]
    auth_getVMChanges = READERS

    @classmethod
    def export_getVMChanges(cls, ce, since=None):
        return cls.vmDB.getVMChanges(ce, since)

    # --- backoff -----------------------------------------------------------------------------
    types_getBackoff = [str, str]
    auth_getBackoff = READERS

    @classmethod
    def export_getBackoff(cls, ce, profile):
        return cls.vmDB.getBackoff(ce, profile)

    types_getBackoffs = []
    auth_getBackoffs = READERS

    @classmethod
    def export_getBackoffs(cls, ce=None, profile=None):
        return cls.vmDB.getBackoffs(ce, profile)

    types_setBackoff = [str, str]
    auth_setBackoff = WRITERS

    @classmethod
    def export_setBackoff(cls, ce, profile, until, reason, probe=False):
        return cls.vmDB.setBackoff(ce, profile, until, reason, bool(probe))

    types_claimProbe = [str, str, str]
    auth_claimProbe = WRITERS

    @classmethod
    def export_claimProbe(cls, ce, profile, vmName):
        return cls.vmDB.claimProbe(ce, profile, vmName)

    types_releaseProbe = [str, str]
    auth_releaseProbe = WRITERS

    @classmethod
    def export_releaseProbe(cls, ce, profile):
        return cls.vmDB.releaseProbe(ce, profile)

    types_clearBackoff = [str, str]
    auth_clearBackoff = WRITERS

    @classmethod
    def export_clearBackoff(cls, ce, profile):
        return cls.vmDB.clearBackoff(ce, profile)

    # --- flavors/zones without capacity (VMCapacity) -----------------------------------------
    types_setNoCapacity = [str, str, str, int]
    auth_setNoCapacity = WRITERS

    @classmethod
    def export_setNoCapacity(cls, cloud, flavor, zone, seconds, reason=""):
        return cls.vmDB.setNoCapacity(cloud, flavor, zone, seconds, reason)

    types_getNoCapacity = [str]
    auth_getNoCapacity = READERS

    @classmethod
    def export_getNoCapacity(cls, cloud):
        return cls.vmDB.getNoCapacity(cloud)

    # --- heartbeats, shutdown messages, logs -------------------------------------------------
    types_addHeartbeat = [str]
    auth_addHeartbeat = WRITERS

    @classmethod
    def export_addHeartbeat(cls, vmName, when=None, load=""):
        return cls.vmDB.addHeartbeat(vmName, when, load)

    types_addHeartbeats = [list]
    auth_addHeartbeats = WRITERS

    @classmethod
    def export_addHeartbeats(cls, heartbeats):
        return cls.vmDB.addHeartbeats(heartbeats)

    types_getHeartbeats = [str]
    auth_getHeartbeats = READERS

    @classmethod
    def export_getHeartbeats(cls, vmName):
        return cls.vmDB.getHeartbeats(vmName)

    types_setShutdownMessage = [str, int]
    auth_setShutdownMessage = WRITERS

    @classmethod
    def export_setShutdownMessage(cls, vmName, code, text=""):
        return cls.vmDB.setShutdownMessage(vmName, code, text)

    types_storeLog = [str, str, [bytes, str]]
    auth_storeLog = WRITERS

    @classmethod
    def export_storeLog(cls, vmName, kind, content):
        return cls.vmDB.storeLog(vmName, kind, as_bytes(content))

    types_getLogs = [str]
    auth_getLogs = READERS

    @classmethod
    def export_getLogs(cls, vmName):
        return cls.vmDB.getLogs(vmName)

    types_getLogInfo = [str]
    auth_getLogInfo = READERS

    @classmethod
    def export_getLogInfo(cls, vmName):
        return cls.vmDB.getLogInfo(vmName)

    # --- the one-time bootstrap fetch ---------------------------------------------------------
    types_storeBootstrap = [str, [bytes, str]]
    auth_storeBootstrap = WRITERS

    @classmethod
    def export_storeBootstrap(cls, vmName, sealed):
        return cls.vmDB.storeBootstrap(vmName, as_bytes(sealed))

    types_claimBootstrap = [str]
    auth_claimBootstrap = WRITERS

    @classmethod
    def export_claimBootstrap(cls, vmName):
        return cls.vmDB.claimBootstrap(vmName)

    types_getBootstrapIncidents = []
    auth_getBootstrapIncidents = READERS

    @classmethod
    def export_getBootstrapIncidents(cls):
        return cls.vmDB.getBootstrapIncidents()

    types_getBootstraps = [list]
    auth_getBootstraps = READERS

    @classmethod
    def export_getBootstraps(cls, vmNames):
        return cls.vmDB.getBootstraps(vmNames)

    types_forgetEndedBootstraps = []
    auth_forgetEndedBootstraps = WRITERS

    @classmethod
    def export_forgetEndedBootstraps(cls):
        return cls.vmDB.forgetEndedBootstraps()

    # --- accounting and housekeeping ---------------------------------------------------------
    types_getAccountingRecords = []
    auth_getAccountingRecords = READERS

    @classmethod
    def export_getAccountingRecords(cls, ce=None, limit=1000):
        return cls.vmDB.getAccountingRecords(ce, limit)

    types_markAccounted = [[list, str]]
    auth_markAccounted = WRITERS

    @classmethod
    def export_markAccounted(cls, names, when=None):
        return cls.vmDB.markAccounted(names, when)

    types_purgeDeletedVMs = []
    auth_purgeDeletedVMs = WRITERS

    @classmethod
    def export_purgeDeletedVMs(cls, olderThan):
        return cls.vmDB.purgeDeletedVMs(olderThan)
