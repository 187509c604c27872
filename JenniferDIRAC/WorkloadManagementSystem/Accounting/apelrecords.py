"""APEL's message formats: ``APEL-individual-job-message: v0.3`` records (a VM as a grid job),
``APEL-cloud-message: v0.4`` records (what cASO writes), the ``APEL-sync-message: v0.1``
records that follow a batch of job records, and one message of records as ssmsend sends it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

JOB_MESSAGE_HEADER = "APEL-individual-job-message: v0.3"
CLOUD_MESSAGE_HEADER = "APEL-cloud-message: v0.4"
SYNC_MESSAGE_HEADER = "APEL-sync-message: v0.1"
MESSAGE_HEADER = JOB_MESSAGE_HEADER  # v0.1.0 name
RECORD_SEPARATOR = "%%"
INFRASTRUCTURE_DESCRIPTION = "APEL-JENNIFERDIRAC"


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
