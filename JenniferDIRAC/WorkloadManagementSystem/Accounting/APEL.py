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
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from DIRAC import S_ERROR, S_OK, gLogger

JOB_MESSAGE_HEADER = "APEL-individual-job-message: v0.3"
CLOUD_MESSAGE_HEADER = "APEL-cloud-message: v0.4"
SYNC_MESSAGE_HEADER = "APEL-sync-message: v0.1"
MESSAGE_HEADER = JOB_MESSAGE_HEADER  # v0.1.0 name
RECORD_SEPARATOR = "%%"
INFRASTRUCTURE_DESCRIPTION = "APEL-JENNIFERDIRAC"
DEFAULT_HS06_PER_CORE = 10.0

END_COMPLETED = "Completed"
END_FIZZLED = "Fizzled"
END_NEVER_STARTED = "NeverStarted"

PUBLISH_NONE, PUBLISH_JOBS, PUBLISH_CLOUD = "None", "Jobs", "Cloud"
PUBLISH_MODES = (PUBLISH_NONE, PUBLISH_JOBS, PUBLISH_CLOUD)

FLAVOR_BENCHMARK_NAME = "accounting:benchmark_name"
FLAVOR_BENCHMARK_VALUE = "accounting:benchmark_value"
#: benchmark names accepted in flavor properties -> (APEL job ServiceLevelType, cloud BenchmarkType)
BENCHMARK_NAMES = {
    "hs06": ("HEPSPEC", "HEPSPEC06"),
    "hepspec": ("HEPSPEC", "HEPSPEC06"),
    "hepspec06": ("HEPSPEC", "HEPSPEC06"),
    "hs23": ("HEPscore23", "HEPscore23"),
    "hepscore23": ("HEPscore23", "HEPscore23"),
}


@dataclass(frozen=True)
class Benchmark:
    """Per-core benchmark of a VM and where it came from (``Flavor`` or ``CE``)."""

    name: str  # key of BENCHMARK_NAMES
    value: float
    source: str

    @property
    def service_level_type(self) -> str:
        return BENCHMARK_NAMES[self.name][0]

    @property
    def cloud_type(self) -> str:
        return BENCHMARK_NAMES[self.name][1]


def flavor_benchmark(properties: dict[str, str]) -> Benchmark | None:
    """The benchmark a flavor's properties declare (cASO's keys), None if they declare none.
    ValueError naming the property if they declare a bad one."""
    name = str(properties.get(FLAVOR_BENCHMARK_NAME, "")).strip()
    value = str(properties.get(FLAVOR_BENCHMARK_VALUE, "")).strip()
    if not name and not value:
        return None
    if name.lower() not in BENCHMARK_NAMES:
        raise ValueError(f"flavor property {FLAVOR_BENCHMARK_NAME} = {name!r}: expected HS06 or HS23")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"flavor property {FLAVOR_BENCHMARK_VALUE} = {value!r} is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"flavor property {FLAVOR_BENCHMARK_VALUE} = {value!r} must be a positive number")
    return Benchmark(name.lower(), number, "Flavor")


# --- record fields ------------------------------------------------------------------------
def _one_line(value) -> str:
    # A newline in a value would start a new field in APEL's parser, and APEL's RecordFactory
    # splits a message at every "%%", even inside a line.
    text = " ".join(str(value).split())
    while "%%" in text:
        text = text.replace("%%", "%")
    return text


def _lines(fields: Iterable[tuple[str, object]]) -> list[str]:
    return [f"{name}: {_one_line(value)}" for name, value in fields if value not in ("", None)]


@dataclass(frozen=True)
class APELRecord:
    """One ``APEL-individual-job-message: v0.3`` record (a VM as a grid job)."""

    site: str
    submit_host: str
    machine_name: str
    local_job_id: str
    local_user_id: str
    queue: str
    global_user_name: str
    fqan: str
    vo: str
    wall_duration: int
    cpu_duration: int
    processors: int
    start_time: int
    end_time: int
    memory_kb: int
    service_level: float
    node_count: int = 1
    service_level_type: str = "HEPSPEC"
    infrastructure_description: str = INFRASTRUCTURE_DESCRIPTION
    infrastructure_type: str = "grid"

    header = JOB_MESSAGE_HEADER

    def lines(self) -> list[str]:
        return _lines(
            [
                ("Site", self.site),
                ("SubmitHost", self.submit_host),
                ("MachineName", self.machine_name),
                ("LocalJobId", self.local_job_id),
                ("LocalUserId", self.local_user_id),
                ("Queue", self.queue),
                ("GlobalUserName", self.global_user_name),
                ("FQAN", self.fqan),
                ("VO", self.vo),
                ("WallDuration", self.wall_duration),
                ("CpuDuration", self.cpu_duration),
                ("Processors", self.processors),
                ("NodeCount", self.node_count),
                ("StartTime", self.start_time),
                ("EndTime", self.end_time),
                ("InfrastructureDescription", self.infrastructure_description),
                ("InfrastructureType", self.infrastructure_type),
                ("MemoryReal", self.memory_kb),
                ("MemoryVirtual", self.memory_kb),
                ("ServiceLevelType", self.service_level_type),
                ("ServiceLevel", f"{self.service_level:g}"),
            ]
        )


@dataclass(frozen=True)
class CloudRecord:
    """One ``APEL-cloud-message: v0.4`` record (the fields cASO writes for a finished VM)."""

    vm_uuid: str
    site_name: str
    cloud_compute_service: str
    machine_name: str
    local_user_id: str
    local_group_id: str
    global_user_name: str
    fqan: str
    start_time: int
    end_time: int
    wall_duration: int
    cpu_duration: int
    cpu_count: int
    memory_mb: int
    benchmark_type: str
    benchmark: float
    cloud_type: str
    image_id: str = ""
    disk_gb: int = 0
    public_ip_count: int = 0
    status: str = "completed"

    header = CLOUD_MESSAGE_HEADER

    def lines(self) -> list[str]:
        return _lines(
            [
                ("VMUUID", self.vm_uuid),
                ("SiteName", self.site_name),
                ("CloudComputeService", self.cloud_compute_service),
                ("MachineName", self.machine_name),
                ("LocalUserId", self.local_user_id),
                ("LocalGroupId", self.local_group_id),
                ("GlobalUserName", self.global_user_name),
                ("FQAN", self.fqan),
                ("Status", self.status),
                ("StartTime", self.start_time),
                ("EndTime", self.end_time),
                ("WallDuration", self.wall_duration),
                ("CpuDuration", self.cpu_duration),
                ("CpuCount", self.cpu_count),
                ("PublicIPCount", self.public_ip_count),
                ("Memory", self.memory_mb),
                ("Disk", self.disk_gb),
                ("BenchmarkType", self.benchmark_type),
                ("Benchmark", str(float(self.benchmark))),  # as cASO writes it: 10.0
                ("ImageId", self.image_id),
                ("CloudType", self.cloud_type),
            ]
        )


@dataclass(frozen=True)
class SyncRecord:
    """One ``APEL-sync-message: v0.1`` record: records a site published for a month."""

    site: str
    submit_host: str
    number_of_jobs: int
    month: int
    year: int

    header = SYNC_MESSAGE_HEADER

    def lines(self) -> list[str]:
        return _lines(
            [
                ("Site", self.site),
                ("SubmitHost", self.submit_host),
                ("NumberOfJobs", self.number_of_jobs),
                ("Month", self.month),
                ("Year", self.year),
            ]
        )


def format_message(records: Iterable) -> str:
    """One APEL message holding ``records`` (all of one kind; each ends with ``%%``)."""
    records = list(records)
    headers = {record.header for record in records}
    if len(headers) > 1:
        raise ValueError(f"one APEL message holds one kind of record, not {sorted(headers)}")
    parts = [headers.pop() if headers else JOB_MESSAGE_HEADER]
    for record in records:
        parts.extend(record.lines())
        parts.append(RECORD_SEPARATOR)
    return "\n".join(parts) + "\n"


def write_message(records: list, outgoing_dir: str) -> str | None:
    """Add one message with ``records`` to the dirq queue in ``outgoing_dir``; its path, or
    None when there is nothing to write. dirq writes a temporary file and renames it, so
    ssmsend never sees half a message."""
    if not records:
        return None
    from dirq.QueueSimple import QueueSimple

    os.makedirs(outgoing_dir, exist_ok=True)
    queue = QueueSimple(outgoing_dir)
    name = queue.add(format_message(records))
    return os.path.join(outgoing_dir, name)


# --- from a VMDB record to accounting ----------------------------------------------------------
def gocdb_site_name(dirac_site: str) -> str:
    """The GOCDB name of a DIRAC site (its ``Name`` option in the CS), else the DIRAC name."""
    if not dirac_site:
        return ""
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getGOCSiteName

    result = getGOCSiteName(dirac_site)
    return result["Value"] if result["OK"] else dirac_site


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


def sync_records(
    records: Iterable[APELRecord | CloudRecord], published: dict | None = None
) -> list[SyncRecord]:
    """Sync records for the sites and months of ``records`` (by their end time), as VCYCLE
    wrote them: the number of records published for that site and month so far
    (``published``: {(site, submit host, year, month): count} before these, updated in place)."""
    published = {} if published is None else published
    touched = []
    for record in records:
        if isinstance(record, CloudRecord):
            site, host = record.site_name, record.cloud_compute_service
        else:
            site, host = record.site, record.submit_host
        end = dt.datetime.fromtimestamp(record.end_time, dt.UTC)
        key = (site, host, end.year, end.month)
        published[key] = published.get(key, 0) + 1
        if key not in touched:
            touched.append(key)
    return [SyncRecord(site, host, published[(site, host, y, m)], m, y) for site, host, y, m in touched]


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


def sync_counts_path(apel_directory: str) -> str:
    """Where the records published per site and month are counted (beside the queue, not in
    it: ssmsend sends every file of the queue)."""
    return os.path.normpath(apel_directory) + ".sync-counts.json"


def _load_counts(path: str) -> dict:
    try:
        with open(path) as stream:
            return {tuple(key): int(count) for key, count in json.load(stream)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError) as exc:
        raise OSError(f"cannot read the APEL sync counts {path}: {exc}") from None


def _save_counts(path: str, counts: dict) -> None:
    with open(path + ".new", "w") as stream:
        json.dump([[list(key), count] for key, count in sorted(counts.items())], stream)
    os.replace(path + ".new", path)


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
            counts = _load_counts(counts_path)
            paths.append(write_message(chosen[PUBLISH_JOBS], settings.apel_directory))
            paths.append(write_message(sync_records(chosen[PUBLISH_JOBS], counts), settings.apel_directory))
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
