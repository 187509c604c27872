"""What the ``dirac-vm-*`` admin commands share: exit codes, VM selection, pilot statuses, tables.

Exit codes (scripts can rely on them):

====  ==========================================================================================
0     success (``dirac-vm-list`` also when no VM matches)
1     usage or configuration error (bad option, unknown CE, missing CS option)
2     the VM state database / VMManager service (or the cloud, for check-ce) could not be used
3     partial failure: some VMs could not be deleted, or a ``dirac-vm-check-ce`` check FAILED
4     nothing matched (``dirac-vm-kill``, ``dirac-vm-logs``)
====  ==========================================================================================
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from DIRAC import gLogger

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNAVAILABLE = 2
EXIT_PARTIAL = 3
EXIT_NOTHING = 4

DELETED = "DELETED"
NO_STATUS = "-"


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


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def age_seconds(vm: dict, now: dt.datetime) -> int:
    created = vm.get("created")
    return int((now - _aware(created)).total_seconds()) if created else 0


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


def pilot_statuses(references: list[str]) -> dict[str, str]:
    """{pilot reference: PilotAgentsDB status}; references unknown to PilotAgentsDB are left
    out. PilotAgentsDB directly where configured on this host, else the PilotManager service.
    Failures are logged and give an empty answer (statuses are extra information)."""
    references = [ref for ref in references if ref]
    if not references:
        return {}
    from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters

    try:
        if getDBParameters("WorkloadManagement/PilotAgentsDB")["OK"]:
            from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

            source = PilotAgentsDB()
        else:
            from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

            source = PilotManagerClient()
        result = source.getPilotInfo(references)
    except Exception as exc:  # pilot statuses are optional in a listing
        gLogger.warn("Cannot read pilot statuses", str(exc))
        return {}
    if not result["OK"]:
        if "No pilots found" not in result["Message"]:
            gLogger.warn("Cannot read pilot statuses", result["Message"])
        return {}
    return {ref: info.get("Status", NO_STATUS) for ref, info in result["Value"].items()}


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
        return _aware(value).isoformat()
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
        until = _aware(b["until"]).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((b["ce"], b["profile"] or NO_STATUS, until, state, str(b["failures"]),
                     b["probe_vm"] or NO_STATUS, b["reason"] or NO_STATUS))
    return rows


def backoffs_json(backoffs: list[dict]) -> str:
    return json.dumps(backoffs, default=_json_default, indent=2, sort_keys=True)


# --- CEs and clouds -----------------------------------------------------------------------------
def ce_parameters(ce_name: str):
    """S_OK(parameters) of a CE as the SiteDirector sees them: CE options, then those of its
    first queue, plus ``Site``, ``GridCE`` and ``Queue``; S_ERROR naming the CE if unknown."""
    from DIRAC import S_ERROR, S_OK
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues

    result = getQueues(ceList=[ce_name])
    if not result["OK"]:
        return result
    for site, ces in result["Value"].items():
        if ce_name not in ces:
            continue
        ce_dict = ces[ce_name]
        params = {k: v for k, v in ce_dict.items() if k != "Queues"}
        queues = ce_dict.get("Queues") or {}
        for queue in sorted(queues):
            params = {**params, **queues[queue], "Queue": queue}
            break
        params.setdefault("Site", site)
        params["GridCE"] = ce_name
        return S_OK(params)
    return S_ERROR(f"CE {ce_name} is not configured under /Resources/Sites/<Grid>/<Site>/CEs")


def make_ce(ce_name: str):
    """S_OK(our cloud CE object for ``ce_name``), configured from the CS as the
    ComputingElementFactory would do it.

    The class is imported directly: in DIRAC 9.1.22 ``Script.parseCommandLine`` (through
    ``LocalConfiguration.enableCS`` -> ``ObjectLoader.reloadRootModules``) leaves ObjectLoader
    searching DIRAC before the extensions, so the factory would build DIRAC's own libcloud
    CloudComputingElement in a command."""
    from DIRAC import S_ERROR, S_OK

    result = ce_parameters(ce_name)
    if not result["OK"]:
        return result
    params = result["Value"]
    if params.get("CEType", "Cloud") != "Cloud":
        return S_ERROR(f"CE {ce_name} is a {params.get('CEType')} CE, not a cloud CE (CEType = Cloud)")
    from JenniferDIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement

    ce = CloudComputingElement(ce_name)
    result = ce.setParameters({**params, "CEType": "Cloud"})
    if not result["OK"]:
        return result
    return S_OK(ce)


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
