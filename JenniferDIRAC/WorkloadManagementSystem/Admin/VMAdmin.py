"""What the ``dirac-vm-*`` admin commands share: exit codes, VM selection, pilot statuses, tables.

Exit codes (scripts can rely on them):

====  ==========================================================================================
0     success (``dirac-vm-list`` also when no VM matches)
1     usage or configuration error (unknown command-line option, bad value, unknown CE, missing
      CS option)
2     the VM state database / VMManager service (or PilotAgentsDB, for ``dirac-vm-list``;
      cloud-init's schema validator, for ``dirac-vm-profile-check``) could not be used
3     partial failure: some VMs could not be deleted, or a ``dirac-vm-check-ce`` check FAILED
4     nothing matched (``dirac-vm-kill``, ``dirac-vm-logs``)
====  ==========================================================================================
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import unicodedata
from collections.abc import Iterable

from DIRAC import gLogger

from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import PILOTAGENTSDB
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import aware

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNAVAILABLE = 2
EXIT_PARTIAL = 3
EXIT_NOTHING = 4

DELETED = "DELETED"
NO_STATUS = "-"


#: Where VMDB is configured on a host, or the service used instead (both named in errors).
VMDB_SECTION = "/Systems/WorkloadManagement/Databases/VMDB"
VMMANAGER_URL_OPTION = "/Systems/WorkloadManagement/URLs/VMManager"


def parse_command_line():
    """``Script.parseCommandLine`` for the dirac-vm-* commands: (switches, positional args).

    DIRAC exits 2 on an unknown or malformed command-line option; these commands keep 2 for
    "the VM state database could not be used", so a usage error exits 1 (EXIT_USAGE)."""
    from DIRAC.Core.Base.Script import Script

    try:
        return Script.parseCommandLine(ignoreErrors=False)
    except SystemExit as exc:
        if exc.code == 2:
            raise SystemExit(EXIT_USAGE) from None
        raise


class MachineOutput:
    """Keeps stdout for one machine-readable document.

    Created before the command line is parsed: everything else written to stdout from then on
    (DIRAC prints "Running without remote configuration" and its log lines there) goes to stderr,
    at the file-descriptor level, so nothing a library prints can spoil the document."""

    def __init__(self):
        sys.stdout.flush()
        self._document = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)

    def emit(self, text: str) -> None:
        self._document.write(text.rstrip("\n") + "\n")
        self._document.flush()


def requested(switch: str) -> bool:
    """True if ``--<switch>`` is on the command line (before DIRAC has parsed it), also
    abbreviated as getopt allows (``--js``)."""
    return any(len(arg) > 2 and f"--{switch}".startswith(arg) for arg in sys.argv[1:] if arg.startswith("--"))


def vm_state_error(message: str) -> str:
    """The error of a command that could not reach VMDB: what failed and both ways to fix it."""
    return (
        f"Cannot read the VM state: {message}\n"
        f"Configure VMDB on this host ({VMDB_SECTION}: DBName, with /Systems/Databases User, Password, "
        f"Host) or the VMManager service URL ({VMMANAGER_URL_OPTION} = dips://<host>:<port>/WorkloadManagement/VMManager)"
    )


def printable(text: str) -> str:
    """`text` safe to print on a terminal: control characters (ANSI escapes, carriage returns,
    bells, ...) shown as escapes; newlines and tabs kept. For anything a VM sent."""
    return "".join(
        char if char in "\n\t" or unicodedata.category(char)[0] != "C" else repr(char)[1:-1] for char in text
    )


def quiet_logs(machine_output: bool = False) -> None:
    """Keep DIRAC's informational logs (they go to stdout) out of a command's output unless
    -d was given; with machine-readable output, warnings too."""
    if gLogger.getLevel() in ("INFO", "NOTICE"):
        gLogger.setLevel("ERROR" if machine_output else "WARN")


def display_state(vm: dict) -> str:
    return DELETED if vm.get("deleted") else vm.get("cloud_state") or "UNKNOWN"


def format_age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def age_seconds(vm: dict, now: dt.datetime) -> int:
    created = vm.get("created")
    return int((now - aware(created)).total_seconds()) if created else 0


def select_vms(vms: Iterable[dict], states: Iterable[str] = (), include_deleted: bool = False) -> list[dict]:
    """VMs in one of ``states`` (cloud states or DELETED; none = any), deleted ones only if asked
    for (explicitly by the DELETED state, or by ``include_deleted``)."""
    wanted = {s.upper() for s in states}
    chosen = []
    for vm in vms:
        state = display_state(vm)
        if state == DELETED and not (include_deleted or DELETED in wanted):
            continue
        if wanted and state not in wanted:
            continue
        chosen.append(vm)
    return chosen


@contextlib.contextmanager
def _quick_mysql_retries():
    """Cap DIRAC's MySQL connection retries at VMDB's (``ConnectRetries`` of PilotAgentsDB's
    section, default VMDB's): DIRAC's default, 10 retries sleeping 5 to 50 s, is 275 s per
    connection attempt, and PilotAgentsDB's module already connects when imported. For a command
    process only: DIRAC reads the cap from a module global."""
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client.PathFinder import getDatabaseSection
    from DIRAC.Core.Utilities import MySQL

    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import DEFAULT_CONNECT_RETRIES

    saved = MySQL.MAXCONNECTRETRY
    MySQL.MAXCONNECTRETRY = gConfig.getValue(f"{getDatabaseSection(PILOTAGENTSDB)}/ConnectRetries", DEFAULT_CONNECT_RETRIES)
    try:
        yield
    finally:
        MySQL.MAXCONNECTRETRY = saved


def pilot_statuses(references: list[str]):
    """S_OK({pilot reference: PilotAgentsDB status}) (references unknown to PilotAgentsDB left
    out), S_ERROR naming the database or service that could not be used. PilotAgentsDB directly
    where configured on this host, else the PilotManager service (Client/PilotStore.py)."""
    from DIRAC import S_ERROR, S_OK

    from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import pilot_info, pilot_store

    references = [ref for ref in references if ref]
    if not references:
        return S_OK({})
    with _quick_mysql_retries():
        try:
            source = pilot_store()
        except RuntimeError as exc:  # DIRAC's DB raises it when it cannot connect
            return S_ERROR(f"Cannot read pilot statuses from {PILOTAGENTSDB}: {exc}")
        result = pilot_info(source.store, references)
    if not result["OK"]:
        return S_ERROR(f"Cannot read pilot statuses from {source.name}: {result['Message']}")
    return S_OK({ref: info.get("Status", NO_STATUS) for ref, info in result["Value"].items()})


LIST_COLUMNS = ("SITE", "CE", "VM", "STATE", "AGE", "PILOT REFERENCE", "PILOT STATUS", "VO")


def list_rows(vms: list[dict], statuses: dict[str, str], now: dt.datetime) -> list[tuple[str, ...]]:
    return [
        (
            vm.get("site") or NO_STATUS,
            vm["ce"],
            vm["vm_name"],
            display_state(vm),
            format_age(age_seconds(vm, now)),
            vm.get("pilot_reference") or NO_STATUS,
            statuses.get(vm.get("pilot_reference") or "", NO_STATUS),
            vm.get("vo") or NO_STATUS,
        )
        for vm in vms
    ]


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)


def _json_default(value):
    if isinstance(value, dt.datetime):
        return aware(value).isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def list_json(vms: list[dict], statuses: dict[str, str], now: dt.datetime) -> str:
    documents = []
    for vm in vms:
        doc = dict(vm)
        doc["state"] = display_state(vm)
        doc["age_seconds"] = age_seconds(vm, now)
        doc["pilot_status"] = statuses.get(vm.get("pilot_reference") or "")
        documents.append(doc)
    return json.dumps(documents, default=_json_default, indent=2, sort_keys=True)


BACKOFF_COLUMNS = ("CE", "PROFILE", "UNTIL (UTC)", "STATE", "FAILURES", "PROBE VM", "REASON")


def backoff_rows(backoffs: list[dict]) -> list[tuple[str, ...]]:
    rows = []
    for b in backoffs:
        if b["active"]:
            state = "BACKING OFF"
        else:
            state = "PROBING" if b["probe"] else "WAITING FOR PROBE"
        until = aware(b["until"]).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((b["ce"], b["profile"] or NO_STATUS, until, state, str(b["failures"]),
                     b["probe_vm"] or NO_STATUS, b["reason"] or NO_STATUS))
    return rows


def backoffs_json(backoffs: list[dict]) -> str:
    return json.dumps(backoffs, default=_json_default, indent=2, sort_keys=True)


# --- CEs and clouds -----------------------------------------------------------------------------
def _ce_parameters_of(ce_name: str):
    """S_OK(CEParameters) of a configured cloud CE with queues; S_ERROR naming what is missing."""
    from DIRAC import S_ERROR, S_OK
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues

    from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import parameters_by_ce

    result = getQueues(ceList=[ce_name])
    if not result["OK"]:
        return result
    sites = {site: {ce_name: ces[ce_name]} for site, ces in result["Value"].items() if ce_name in ces}
    if not sites:
        return S_ERROR(f"CE {ce_name} is not configured under /Resources/Sites/<Grid>/<Site>/CEs")
    if any(not ces[ce_name].get("CEType") for ces in sites.values()):
        return S_ERROR(f"CS option CEType of CE {ce_name} is missing (CEType = Cloud)")
    if not any(ces[ce_name].get("Queues") for ces in sites.values()):
        return S_ERROR(f"CE {ce_name} has no queue (/Resources/Sites/<Grid>/<Site>/CEs/{ce_name}/Queues)")
    result = parameters_by_ce(sites)  # the VMDirector's rule too
    if not result["OK"]:
        return result
    return S_OK(result["Value"][ce_name])


def ce_queues(ce_name: str):
    """S_OK({queue: parameters}) of a CE, each as the SiteDirector builds them (DIRAC's
    getQueuesResolved: CE options, then the queue's, plus Site, GridCE, Queue, CPUTime, ...);
    S_ERROR naming the CE if it is not configured."""
    from DIRAC import S_OK

    result = _ce_parameters_of(ce_name)
    return S_OK(result["Value"].queues) if result["OK"] else result


def ce_parameters(ce_name: str):
    """S_OK(parameters) of a CE with its first queue (by name): what commands that act on the
    CE's VMs whatever their queue (kill, logs) need."""
    from DIRAC import S_OK

    result = _ce_parameters_of(ce_name)
    return S_OK(result["Value"].with_first_queue) if result["OK"] else result


def make_ce(ce_name: str, params: dict | None = None):
    """S_OK(the cloud CE object for ``ce_name``), built by DIRAC's ComputingElementFactory as the
    SiteDirector builds it (from ``params``, default: the CE with its first queue)."""
    from DIRAC import S_ERROR
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    if params is None:
        result = ce_parameters(ce_name)
        if not result["OK"]:
            return result
        params = result["Value"]
    if params.get("CEType", "Cloud") != "Cloud":
        return S_ERROR(f"CE {ce_name} is a {params.get('CEType')} CE, not a cloud CE (CEType = Cloud)")
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=ce_name, ceParametersDict=dict(params))
    if not result["OK"]:
        return result
    if not type(result["Value"]).__module__.startswith("JenniferDIRAC."):
        return S_ERROR(f"DIRAC built {type(result['Value']).__module__} for {ce_name}, not JenniferDIRAC's cloud CE")
    return result


def cloud_access(ce_name: str):
    """(CloudCEConfig, CloudBackend) of a CE; raises CloudError (ConfigurationError names the
    CS option) or ValueError if the CE is not configured."""
    from JenniferDIRAC.Resources.Cloud.backends import make_backend
    from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig

    result = ce_parameters(ce_name)
    if not result["OK"]:
        raise ValueError(result["Message"])
    config = CloudCEConfig.from_ce_parameters(ce_name, result["Value"])
    return config, make_backend(config)


def match_references(vms: list[dict], wanted: list[str]) -> tuple[list[dict], list[str]]:
    """VMs named by pilot reference (with or without ``:::stamp``) or VM name; and the
    names that matched nothing."""
    by_key = {}
    for vm in vms:
        by_key[vm["vm_name"]] = vm
        if vm.get("pilot_reference"):
            by_key[vm["pilot_reference"]] = vm
    chosen, unknown = {}, []
    for item in wanted:
        vm = by_key.get(item.split(":::", 1)[0])
        if vm is None:
            unknown.append(item)
        else:
            chosen[vm["vm_name"]] = vm
    return list(chosen.values()), unknown
