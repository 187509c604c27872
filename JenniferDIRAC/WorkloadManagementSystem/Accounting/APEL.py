"""Accounting of finished VMs: DIRAC's ``VirtualMachine`` accounting type and APEL records.

What each CE publishes to APEL is chosen per CE (or per site) with the CS option
``ApelPublish`` (on ``/Resources/Sites/<Grid>/<Site>/CEs/<CE>``, else on the site's section):

- ``None`` (the default): nothing. On EGI FedCloud the cloud site itself (or EGI's catch-all
  service) publishes every VM with cASO as cloud records; a second record from us would count
  the same VM twice.
- ``Jobs``: one ``APEL-individual-job-message: v0.3`` record per VM, as VCYCLE did, for a
  private cloud that appears in APEL as a grid site.
- ``Cloud``: one ``APEL-cloud-message: v0.4`` record per VM (what cASO writes), for a cloud
  whose provider does not publish.

Each batch of job records is one message, followed by ``APEL-sync-message: v0.1`` records (per site and
month, how many records that site has published so far: APEL's server compares them with
what it received). Messages go into a dirq ``QueueSimple`` directory (the VMDirector's
``ApelDirectory``): the layout APEL's ``ssmsend`` reads (``[messaging] path``).

Benchmark: the flavor's properties ``accounting:benchmark_name`` (``HS06``/``HEPSPEC06`` or
``HS23``/``HEPscore23``) and ``accounting:benchmark_value`` (per core), as cASO reads them,
where the cloud provides them; otherwise the CE option ``HS06PerCore`` (default 10). Which one
was used is the ``BenchmarkSource`` of the DIRAC record.

CPU time: what the VM's kernel counted (user, nice, system, irq and softirq time of all cores in
/proc/stat), sent by the VM after its load in every heartbeat and once more when it finishes
(``cpu=<seconds>``; VMDB keeps the last heartbeat), capped at cores x wall; a VM that never
reported has CpuDuration 0, not its wall time (VCYCLE wrote CPU = wall).

VMs shorter than FizzleSeconds get no APEL record (as VCYCLE): they did no work. They are still
recorded in DIRAC's accounting, with EndStatus ``Fizzled``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from DIRAC import S_ERROR, S_OK, gLogger

# The record formats, the benchmark and the outgoing queue have their own modules; their names
# stay importable from here, where the VMDirector and the tests have always found them.
from JenniferDIRAC.WorkloadManagementSystem.Accounting.apelqueue import (  # noqa: F401
    _load_counts,
    _save_counts,
    sync_counts_path,
    write_message,
)
from JenniferDIRAC.WorkloadManagementSystem.Accounting.apelrecords import (  # noqa: F401
    CLOUD_MESSAGE_HEADER,
    INFRASTRUCTURE_DESCRIPTION,
    JOB_MESSAGE_HEADER,
    MESSAGE_HEADER,
    RECORD_SEPARATOR,
    SYNC_MESSAGE_HEADER,
    APELRecord,
    CloudRecord,
    SyncRecord,
    format_message,
    sync_records,
)
from JenniferDIRAC.WorkloadManagementSystem.Accounting.benchmark import (  # noqa: F401
    BENCHMARK_NAMES,
    DEFAULT_HS06_PER_CORE,
    FLAVOR_BENCHMARK_NAME,
    FLAVOR_BENCHMARK_VALUE,
    Benchmark,
    flavor_benchmark,
)

END_COMPLETED = "Completed"
END_FIZZLED = "Fizzled"
END_NEVER_STARTED = "NeverStarted"

PUBLISH_NONE, PUBLISH_JOBS, PUBLISH_CLOUD = "None", "Jobs", "Cloud"
PUBLISH_MODES = (PUBLISH_NONE, PUBLISH_JOBS, PUBLISH_CLOUD)


# --- from a VMDB record to accounting ----------------------------------------------------------
def gocdb_site_name(dirac_site: str) -> str:
    """The GOCDB name of a DIRAC site (its ``Name`` option in the CS), else the DIRAC name."""
    if not dirac_site:
        return ""
    from DIRAC import gConfig

    # the option DIRAC's getGOCSiteName reads, read here: for a site without it (most cloud
    # sites) that helper builds an S_ERROR with its call stack, once per accounted VM
    return gConfig.getValue(f"{_site_section(dirac_site)}/Name", "") or dirac_site


def _site_section(site: str) -> str:
    return f"/Resources/Sites/{site.split('.')[0]}/{site}"


def publish_mode_from_cs(vm: dict) -> str:
    """``ApelPublish`` of the VM's CE, else of its site, else ``None``.
    ValueError naming the option if it holds anything else than None, Jobs or Cloud."""
    from DIRAC import gConfig

    site = vm.get("site") or ""
    paths = (
        [f"{_site_section(site)}/CEs/{vm['ce']}/ApelPublish", f"{_site_section(site)}/ApelPublish"]
        if site
        else []
    )
    for path in paths:
        value = gConfig.getValue(path, "")
        if value:
            for mode in PUBLISH_MODES:
                if value.strip().lower() == mode.lower():
                    return mode
            raise ValueError(f"CS option {path} = {value!r}: expected one of {', '.join(PUBLISH_MODES)}")
    return PUBLISH_NONE


def _no_flavor_properties(vm: dict) -> dict[str, str]:
    return {}


@dataclass
class AccountingSettings:
    """How finished VMs are accounted (VMDirector and CE options)."""

    fizzle_seconds: int = 600
    apel_directory: str = ""  # "" = no APEL records whatever the CEs choose
    send_dirac_accounting: bool = True
    #: the CE option HS06PerCore (the fallback when the flavor declares no benchmark)
    hs06_per_core: Callable[[dict], float] = field(default=lambda vm: DEFAULT_HS06_PER_CORE)
    #: the properties (extra specs) of the VM's flavor, as the cloud gives them
    flavor_properties: Callable[[dict], dict[str, str]] = field(default=_no_flavor_properties)
    publish_mode: Callable[[dict], str] = field(default=publish_mode_from_cs)
    site_name: Callable[[str], str] = field(default=gocdb_site_name)
    fqan: Callable[[dict], str] = field(
        default=lambda vm: f"/{vm['vo']}/Role=NULL/Capability=NULL" if vm.get("vo") else ""
    )
    #: CloudComputeService of cloud records (the GOCDB service's name; default the CE name)
    compute_service: Callable[[dict], str] = field(default=lambda vm: vm["ce"])


def benchmark(vm: dict, settings: AccountingSettings) -> Benchmark:
    """The flavor's benchmark if the cloud declares one, else the CE's HS06PerCore. A flavor
    declaring a bad one is logged and the CE's used (the VM still gets accounted)."""
    try:
        declared = flavor_benchmark(settings.flavor_properties(vm) or {})
    except ValueError as exc:
        gLogger.warn("Ignoring the flavor's benchmark", f"{vm.get('flavor')}: {exc}")
        declared = None
    return declared or Benchmark("hs06", float(settings.hs06_per_core(vm)), "CE")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _epoch(value: dt.datetime) -> int:
    return calendar.timegm(_utc(value).utctimetuple())


def end_status(vm: dict, fizzle_seconds: int) -> str:
    if not vm.get("started"):
        return END_NEVER_STARTED
    return END_FIZZLED if vm["wall_seconds"] < fizzle_seconds else END_COMPLETED


#: the optional field of a heartbeat (after /proc/loadavg) with the VM's CPU seconds
HEARTBEAT_CPU = re.compile(r"(?:^|\s)cpu=(\d{1,15})(?:\s|$)")


def reported_cpu_seconds(vm: dict) -> int:
    """``cpu_seconds`` if the record has it, else the ``cpu=`` of the VM's last heartbeat
    (VMDB keeps its text as ``heartbeat_load``), else 0."""
    if vm.get("cpu_seconds") is not None:
        try:
            return int(float(vm["cpu_seconds"]))
        except (TypeError, ValueError, OverflowError):
            return 0
    match = HEARTBEAT_CPU.search(str(vm.get("heartbeat_load") or ""))
    return int(match.group(1)) if match else 0


def cpu_seconds(vm: dict) -> int:
    """CPU seconds the VM reported, within [0, cores x wall] (the VM is not trusted)."""
    reported = reported_cpu_seconds(vm)
    limit = int(vm.get("wall_seconds") or 0) * max(1, int(vm.get("cores") or 1))
    return max(0, min(reported, limit))


def global_user_name(ce: str) -> str:
    """VCYCLE's host-like DN for a machine: ``/DC=org/DC=example/DC=cloud`` for cloud.example.org."""
    return "".join(f"/DC={part}" for part in reversed([p for p in ce.split(".") if p]))


def _publishable(vm: dict, settings: AccountingSettings) -> bool:
    return bool(vm.get("started") and vm.get("end") and vm["wall_seconds"] >= settings.fizzle_seconds)


def apel_record(vm: dict, settings: AccountingSettings) -> APELRecord | None:
    """The individual job record of a finished VM, None if it fizzled or never started."""
    if not _publishable(vm, settings):
        return None
    bench = benchmark(vm, settings)
    return APELRecord(
        site=settings.site_name(vm["site"]) or vm["ce"],
        submit_host=f"{vm['ce']}/jenniferdirac",
        machine_name=vm["vm_name"],
        local_job_id=vm.get("vm_id") or vm["vm_name"],
        local_user_id=vm["vm_name"],
        queue=vm.get("profile") or vm["ce"],
        global_user_name=global_user_name(vm["ce"]),
        fqan=settings.fqan(vm),
        vo=vm.get("vo", ""),
        wall_duration=int(vm["wall_seconds"]),
        cpu_duration=cpu_seconds(vm),
        processors=max(1, int(vm.get("cores") or 1)),
        start_time=_epoch(vm["started"]),
        end_time=_epoch(vm["end"]),
        memory_kb=int(vm.get("ram_mb") or 0) * 1024,
        service_level=bench.value,
        service_level_type=bench.service_level_type,
    )


def cloud_record(vm: dict, settings: AccountingSettings) -> CloudRecord | None:
    """The v0.4 cloud record of a finished VM, None if it fizzled or never started."""
    if not _publishable(vm, settings):
        return None
    from JenniferDIRAC import __version__

    bench = benchmark(vm, settings)
    return CloudRecord(
        vm_uuid=vm.get("vm_id") or vm["vm_name"],
        site_name=settings.site_name(vm["site"]) or vm["ce"],
        cloud_compute_service=settings.compute_service(vm),
        machine_name=vm["vm_name"],
        local_user_id=vm.get("vo") or vm["ce"],
        local_group_id=vm.get("vo") or vm["ce"],
        global_user_name=global_user_name(vm["ce"]),
        fqan=settings.fqan(vm),
        start_time=_epoch(vm["started"]),
        end_time=_epoch(vm["end"]),
        wall_duration=int(vm["wall_seconds"]),
        cpu_duration=cpu_seconds(vm),
        cpu_count=max(1, int(vm.get("cores") or 1)),
        memory_mb=int(vm.get("ram_mb") or 0),
        benchmark_type=bench.cloud_type,
        benchmark=bench.value,
        cloud_type=f"jenniferdirac/{__version__}",
    )


def dirac_accounting_record(vm: dict, settings: AccountingSettings):
    """The ``VirtualMachine`` accounting register of a finished VM (values checked)."""
    from JenniferDIRAC.AccountingSystem.Client.Types.VirtualMachine import VirtualMachine

    cores = int(vm.get("cores") or 0)
    wall = int(vm["wall_seconds"])
    cpu = min(cpu_seconds(vm), wall * cores)
    bench = benchmark(vm, settings)
    end = vm.get("end") or vm.get("deleted")
    start = vm.get("started") or vm.get("created") or end
    register = VirtualMachine()
    register.setStartTime(_utc(start).replace(tzinfo=None))
    register.setEndTime(_utc(max(end, start)).replace(tzinfo=None))
    result = register.setValuesFromDict(
        {
            "Site": vm.get("site") or "Unknown",
            "CE": vm["ce"],
            "VO": vm.get("vo") or "Unknown",
            "Flavor": vm.get("flavor") or "Unknown",
            "Profile": vm.get("profile") or "default",
            "EndStatus": end_status(vm, settings.fizzle_seconds),
            "BenchmarkSource": bench.source,
            "VMs": 1,
            "Cores": cores,
            "WallTime": wall,
            "CoreWallTime": wall * cores,
            "NormCoreWallTime": float(wall * cores * bench.value),
            "CPUTime": cpu,
            "NormCPUTime": float(cpu * bench.value),
        }
    )
    if not result["OK"]:
        return result
    result = register.checkValues()
    if not result["OK"]:
        return result
    return S_OK(register)


def send_dirac_records(vms: list[dict], settings: AccountingSettings):
    """Send the ``VirtualMachine`` records of finished VMs to DIRAC's DataStore (one commit)."""
    from DIRAC.AccountingSystem.Client.DataStoreClient import gDataStoreClient

    for vm in vms:
        result = dirac_accounting_record(vm, settings)
        if not result["OK"]:
            return S_ERROR(f"accounting record of VM {vm['vm_name']}: {result['Message']}")
        gDataStoreClient.addRegister(result["Value"])
    result = gDataStoreClient.commit()
    if not result["OK"]:
        return S_ERROR(f"DIRAC accounting commit failed: {result['Message']}")
    return S_OK(len(vms))


def apel_records(vms: list[dict], settings: AccountingSettings) -> dict[str, list]:
    """{publish mode: records} of the VMs whose CE publishes (raises ValueError on a bad
    ``ApelPublish``)."""
    builders = {PUBLISH_JOBS: apel_record, PUBLISH_CLOUD: cloud_record}
    chosen: dict[str, list] = {PUBLISH_JOBS: [], PUBLISH_CLOUD: []}
    for vm in vms:
        mode = settings.publish_mode(vm)
        if mode in builders:
            record = builders[mode](vm, settings)
            if record is not None:
                chosen[mode].append(record)
    return chosen


#: the sync counts file is read, added to and replaced (through one ``.new`` file): the VMDirector's
#: CEs account at once (CEsInParallel, ProjectsInParallel), and two at once lost a count or
#: failed on the other's rename of ``.new``
_SYNC_COUNTS_LOCK = threading.Lock()


def write_apel(vms: list[dict], settings: AccountingSettings):
    """Write the APEL messages of these VMs into the ApelDirectory: job records followed by
    their sync records (the site's count for the month so far), cloud records (APEL's server
    keeps no sync count for those). S_OK({"paths": [...], "records": n})."""
    if not settings.apel_directory:
        return S_OK({"paths": [], "records": 0})
    try:
        chosen = apel_records(vms, settings)
    except ValueError as exc:
        return S_ERROR(str(exc))
    paths, count = [], 0
    try:
        if chosen[PUBLISH_JOBS]:
            counts_path = sync_counts_path(settings.apel_directory)
            with _SYNC_COUNTS_LOCK:
                counts = _load_counts(counts_path)
                paths.append(write_message(chosen[PUBLISH_JOBS], settings.apel_directory))
                syncs = sync_records(chosen[PUBLISH_JOBS], counts)
                paths.append(write_message(syncs, settings.apel_directory))
                _save_counts(counts_path, counts)
        if chosen[PUBLISH_CLOUD]:
            paths.append(write_message(chosen[PUBLISH_CLOUD], settings.apel_directory))
    except OSError as exc:
        return S_ERROR(f"cannot write APEL records to {settings.apel_directory}: {exc}")
    count = len(chosen[PUBLISH_JOBS]) + len(chosen[PUBLISH_CLOUD])
    return S_OK({"paths": paths, "records": count})


def account_finished_vms(vms: list[dict], settings: AccountingSettings, client=None):
    """Account finished VMs (VMDB accounting records: ``VMStateClient.getAccountingRecords()``).

    For each VM: a ``VirtualMachine`` register to DIRAC's DataStore, an APEL record if its CE
    publishes and it did not fizzle, then the VM is marked accounted in VMDB. A failure
    leaves the VMs unaccounted, so the next cycle tries again; a record written twice is
    harmless (APEL's server keys records by SubmitHost, LocalJobId and EndTime, or VMUUID).
    S_OK({"accounted": [names], "apel": first message path or None, "apel_paths": [...],
    "apel_records": n, "skipped": [names]})."""
    if client is None:
        from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

        client = VMStateClient()
    ready = [vm for vm in vms if vm.get("end") or vm.get("deleted")]
    skipped = [vm["vm_name"] for vm in vms if vm not in ready]
    if not ready:
        return S_OK({"accounted": [], "apel": None, "apel_paths": [], "apel_records": 0, "skipped": skipped})

    if settings.send_dirac_accounting:
        result = send_dirac_records(ready, settings)
        if not result["OK"]:
            return result

    result = write_apel(ready, settings)
    if not result["OK"]:
        return result
    paths, apel_count = result["Value"]["paths"], result["Value"]["records"]

    names = [vm["vm_name"] for vm in ready]
    result = client.markAccounted(names)
    if not result["OK"]:
        return result
    gLogger.info("Accounted finished VMs", f"{len(names)} ({apel_count} APEL records)")
    return S_OK(
        {
            "accounted": names,
            "apel": paths[0] if paths else None,
            "apel_paths": paths,
            "apel_records": apel_count,
            "skipped": skipped,
        }
    )


def account_finished_vm(vm: dict, settings: AccountingSettings, client=None):
    """Account one finished VM (see ``account_finished_vms``)."""
    return account_finished_vms([vm], settings, client)
