"""VMStateClient: the one way the CE, the agents, the VM endpoint and the commands reach VMDB.

Where the database is configured on this host (``/Systems/WorkloadManagement/Databases/VMDB``
with its DBName, and User/Password/Host reachable through ``getDBParameters``), calls go straight
to VMDB; elsewhere to the DIPS service ``WorkloadManagement/VMManager``. Both paths return the
same values: S_OK/S_ERROR, datetimes as timezone-aware UTC, log contents as bytes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

from DIRAC import S_ERROR, S_OK, gLogger
from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters
from DIRAC.Core.Base.Client import Client

DB_FULL_NAME = "WorkloadManagement/VMDB"
SERVICE = "WorkloadManagement/VMManager"

_dbLock = threading.Lock()
_db = None  # the VMDB of this process, for the database the CS names now


def _key(host, port, dbname, user) -> tuple:
    return (str(host), int(port), str(dbname), str(user))


def _localDB():
    """The process-wide VMDB, or None when the database is not configured here. A new one is
    made when the CS names another database than the cached one."""
    global _db
    with _dbLock:
        result = getDBParameters(DB_FULL_NAME)
        if not result["OK"]:
            return None
        params = result["Value"]
        wanted = _key(params["Host"], params["Port"], params["DBName"], params["User"])
        if _db is not None and _key(_db.dbHost, _db.dbPort, _db.dbName, _db.dbUser) == wanted:
            return _db
        from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

        try:
            _db = VMDB()
        except RuntimeError as exc:
            gLogger.warn("VMDB is configured but unusable, using the VMManager service", str(exc))
            return None
        return _db


#: values passed as they are, without a call per value (a cycle converts ~30,000 at N=5,000)
_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_wire(value):
    """Datetimes as naive UTC (what VMDB and DIPS carry), recursively."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, Mapping):
        return {k: v if type(v) in _PLAIN else to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else to_wire(v) for v in value]
    return value


def from_wire(value):
    """Naive UTC datetimes as aware UTC, recursively; tuples stay tuples."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _PLAIN else from_wire(v) for v in value]
    if isinstance(value, tuple):
        return tuple(from_wire(v) for v in value)
    return value


def _bytes(content) -> bytes:
    if isinstance(content, str):  # DIRAC's DEncode turns bytes into str
        return content.encode("utf-8", errors="surrogateescape")
    return bytes(content)


class VMStateClient:
    """VMDB's API (see ``VMDB`` for the semantics of each method)."""

    def __init__(self, mode: str = "auto", url: str | None = None, **kwargs):
        """``mode``: ``auto`` (DB if configured here, else service), ``db`` or ``service``."""
        if mode not in ("auto", "db", "service"):
            raise ValueError(f"VMStateClient mode must be auto, db or service, not {mode!r}")
        self._db = None
        if mode in ("auto", "db"):
            self._db = _localDB()
            if self._db is None and mode == "db":
                raise RuntimeError("VMDB is not configured on this host (/Systems/WorkloadManagement/Databases/VMDB)")
        self._rpc = None if self._db is not None else Client(url=url or SERVICE, **kwargs)

    @property
    def direct(self) -> bool:
        """True when calls go straight to the database."""
        return self._db is not None

    def _call(self, method: str, *args, convert: bool = True):
        """`method` in VMDB or the service; `convert`: the answer's times as aware datetimes,
        else as they travel (naive UTC)."""
        args = tuple(to_wire(a) for a in args)
        try:
            if self._db is not None:
                result = getattr(self._db, method)(*args)
            else:
                result = getattr(self._rpc, method)(*args)
        except Exception as exc:  # a bug or a broken connection must not escape into agents
            gLogger.exception(f"VMStateClient.{method} failed", lException=exc)
            return S_ERROR(f"VMStateClient.{method}: {exc}")
        if not result["OK"] or not convert:
            return result
        return S_OK(from_wire(result["Value"]))

    # --- VMs ---------------------------------------------------------------------------------
    def recordVMs(self, records: list[dict]):
        return self._call("recordVMs", list(records))

    def setVMStates(self, states: Mapping, when: dt.datetime | None = None):
        return self._call("setVMStates", dict(states), when)

    def markVMsDeleted(self, names, reason: str = "", when: dt.datetime | None = None):
        names = dict(names) if isinstance(names, Mapping) else [names] if isinstance(names, str) else list(names)
        return self._call("markVMsDeleted", names, reason, when)

    def getVMs(self, ce=None, names=None, active_only=False, **filters):
        """Filters: ``ce, names, active_only, states, site, vo, pilot_references,
        unaccounted_only, limit``."""
        return self._vms({"ce": ce, "names": names, "active_only": active_only, **filters}, convert=True)

    def getVMRows(self, ce=None, **filters):
        """getVMs' dicts with their times as naive UTC, as VMDB keeps them and as they travel: no
        value is converted (a caller that makes its own objects, VMRecord.from_record, reads them
        as UTC; 1,250 rows of 26 fields per CE and cycle for the VMDirector)."""
        return self._vms({"ce": ce, **filters}, convert=False)

    def getVMChanges(self, ce: str, since: dt.datetime | None = None):
        """One CE's rows for a reader that keeps them between reads (VMDB.getVMChanges): the
        rows with their times as naive UTC (as getVMRows), the database's "now" at the read
        (naive UTC, microseconds), and the count and change stamps sum of the rows a full read gives."""
        return self._call("getVMChanges", ce, since, convert=False)

    def _vms(self, query: dict, convert: bool):
        query = {k: (list(v) if isinstance(v, (set, tuple)) else v) for k, v in query.items() if v is not None}
        if self._db is None:
            return self._call("getVMs", query, convert=convert)
        try:  # in-process the filters are keyword arguments: an unknown one is a TypeError
            result = self._db.getVMs(**to_wire(query))
        except TypeError as exc:
            return S_ERROR(f"getVMs: {exc}")
        return S_OK(from_wire(result["Value"])) if convert and result["OK"] else result

    def getVM(self, name: str):
        """S_OK(dict) of one VM, S_ERROR if unknown."""
        result = self.getVMs(names=[name])
        if not result["OK"]:
            return result
        if not result["Value"]:
            return S_ERROR(f"unknown VM {name!r}")
        return S_OK(result["Value"][0])

    # --- backoff -----------------------------------------------------------------------------
    def getBackoff(self, ce: str, profile: str = ""):
        return self._call("getBackoff", ce, profile or "")

    def getBackoffs(self, ce: str | None = None, profile: str | None = None):
        return self._call("getBackoffs", ce, profile)

    def setBackoff(self, ce: str, profile: str, until: dt.datetime, reason: str, probe: bool = False):
        return self._call("setBackoff", ce, profile or "", until, reason, bool(probe))

    def claimProbe(self, ce: str, profile: str, vm_name: str):
        return self._call("claimProbe", ce, profile or "", vm_name)

    def releaseProbe(self, ce: str, profile: str = ""):
        return self._call("releaseProbe", ce, profile or "")

    def clearBackoff(self, ce: str, profile: str = ""):
        return self._call("clearBackoff", ce, profile or "")

    # --- flavors/zones without capacity (VMCapacity) -----------------------------------------
    def setNoCapacity(self, cloud: str, flavor: str, zone: str, seconds: int, reason: str = ""):
        return self._call("setNoCapacity", cloud, flavor, zone or "", int(seconds), reason or "")

    def getNoCapacity(self, cloud: str):
        return self._call("getNoCapacity", cloud)

    # --- heartbeats, shutdown messages, logs -------------------------------------------------
    def addHeartbeat(self, vm_name: str, when: dt.datetime | None = None, load: str = ""):
        return self._call("addHeartbeat", vm_name, when, load)

    def addHeartbeats(self, heartbeats):
        """``[(vm_name, when, load), ...]`` in one call (VMDB.addHeartbeats)."""
        return self._call("addHeartbeats", [list(row) for row in heartbeats])

    def getHeartbeats(self, vm_name: str):
        result = self._call("getHeartbeats", vm_name)
        if result["OK"]:
            result["Value"] = [tuple(beat) for beat in result["Value"]]
        return result

    def setShutdownMessage(self, vm_name: str, code: int, text: str = ""):
        return self._call("setShutdownMessage", vm_name, code, text)

    def storeLog(self, vm_name: str, kind: str, content: bytes):
        if isinstance(content, str):
            content = content.encode()
        return self._call("storeLog", vm_name, kind, bytes(content))

    def getLogs(self, vm_name: str):
        result = self._call("getLogs", vm_name)
        if result["OK"]:
            result["Value"] = {kind: _bytes(content) for kind, content in result["Value"].items()}
        return result

    def getLogInfo(self, vm_name: str):
        return self._call("getLogInfo", vm_name)

    # --- the one-time bootstrap fetch ---------------------------------------------------------
    def storeBootstrap(self, vm_name: str, sealed: bytes):
        return self._call("storeBootstrap", vm_name, bytes(sealed))

    def claimBootstrap(self, vm_name: str):
        """S_OK(sealed bytes) to the first caller, S_OK(None) (a recorded replay) to later ones."""
        result = self._call("claimBootstrap", vm_name)
        if result["OK"] and result["Value"] is not None:
            result["Value"] = _bytes(result["Value"])
        return result

    def getBootstrapIncidents(self):
        return self._call("getBootstrapIncidents")

    def getBootstraps(self, names):
        """S_OK({VM name: when its bootstrap was fetched, None if never}) of those of `names` that have one."""
        return self._call("getBootstraps", list(names))

    def forgetEndedBootstraps(self):
        return self._call("forgetEndedBootstraps")

    # --- accounting and housekeeping ---------------------------------------------------------
    def getAccountingRecords(self, ce: str | None = None, limit: int | None = 1000):
        return self._call("getAccountingRecords", ce, limit)

    def markAccounted(self, names, when: dt.datetime | None = None):
        return self._call("markAccounted", [names] if isinstance(names, str) else list(names), when)

    def purgeDeletedVMs(self, older_than: dt.datetime):
        return self._call("purgeDeletedVMs", older_than)
