"""Reading and checking APEL messages as APEL's server does (tests only).

The field rules are those of APEL's record classes (github.com/apel/apel,
``apel/db/records/{job,cloud,sync,record}.py`` and ``apel/db/loader/record_factory.py``):
which fields a message may hold, which are mandatory, which must parse as integers, floats or
epoch times, and the job record's ServiceLevelType / StartTime <= EndTime checks. They are
restated here (not imported: APEL is not on PyPI) so a test fails if we write anything the
loader would reject.
"""

from __future__ import annotations

import datetime as dt

JOB_HEADER = "APEL-individual-job-message: v0.3"
CLOUD_HEADER = "APEL-cloud-message: v0.4"
SYNC_HEADER = "APEL-sync-message: v0.1"

RULES = {
    JOB_HEADER: {
        "mandatory": ["Site", "LocalJobId", "WallDuration", "CpuDuration", "StartTime", "EndTime"],
        "fields": [
            "Site", "SubmitHost", "MachineName", "Queue", "LocalJobId", "LocalUserId", "GlobalUserName",
            "FQAN", "VO", "VOGroup", "VORole", "WallDuration", "CpuDuration", "Processors", "NodeCount",
            "StartTime", "EndTime", "InfrastructureDescription", "InfrastructureType", "MemoryReal",
            "MemoryVirtual", "ServiceLevelType", "ServiceLevel", "SubmitHostType", "UpdateTime",
        ],
        "int": ["WallDuration", "CpuDuration", "Processors", "NodeCount", "MemoryReal", "MemoryVirtual"],
        "float": ["ServiceLevel"],
        "datetime": ["StartTime", "EndTime"],
    },
    CLOUD_HEADER: {
        "mandatory": ["VMUUID", "SiteName", "StartTime"],
        "fields": [
            "RecordCreateTime", "VMUUID", "SiteName", "CloudComputeService", "MachineName", "LocalUserId",
            "LocalGroupId", "GlobalUserName", "FQAN", "Status", "StartTime", "EndTime", "SuspendDuration",
            "WallDuration", "CpuDuration", "CpuCount", "NetworkType", "NetworkInbound", "NetworkOutbound",
            "PublicIPCount", "Memory", "Disk", "BenchmarkType", "Benchmark", "StorageRecordId", "ImageId",
            "CloudType", "VO", "VOGroup", "VORole", "UpdateTime", "MeasurementTime", "MeasurementMonth",
            "MeasurementYear",
        ],
        "int": [
            "SuspendDuration", "WallDuration", "CpuDuration", "CpuCount", "NetworkInbound", "NetworkOutbound",
            "PublicIPCount", "Memory", "Disk",
        ],
        "float": ["Benchmark"],
        "datetime": ["RecordCreateTime", "StartTime", "EndTime"],
    },
    SYNC_HEADER: {
        "mandatory": ["Site", "NumberOfJobs", "Month", "Year"],
        "fields": ["Site", "SubmitHost", "NumberOfJobs", "Month", "Year"],
        "int": ["NumberOfJobs", "Month", "Year"],
        "float": [],
        "datetime": [],
    },
}  # fmt: skip
VALID_SERVICE_LEVEL_TYPES = {"si2k", "hepspec", "hepscore23"}
CLOUD_STATUSES = {"started", "completed", "error", "paused", "suspended", "stopped", "unknown"}
NULLS = {"none", "null", ""}


def read_messages(outgoing_dir: str) -> list[str]:
    """The messages waiting in a dirq queue (what ssmsend would send), oldest first, as text."""
    from dirq.QueueSimple import QueueSimple

    queue = QueueSimple(outgoing_dir)
    messages = []
    for name in queue:
        if queue.lock(name):
            messages.append(queue.get(name).decode("utf-8"))
            queue.unlock(name)
    return messages


def split_message(text: str) -> tuple[str, list[dict[str, str]]]:
    """(header, records) of an APEL message, as APEL's RecordFactory splits it (header line,
    records separated by ``%%``, ``Key: value`` lines split at the first colon)."""
    lines = text.splitlines()
    if not lines or ":" not in lines[0]:
        raise ValueError(f"not an APEL message: {lines[0] if lines else ''!r}")
    header = lines[0].strip()
    body = "\n".join(lines[1:]).strip()
    if body and not body.endswith("%%"):
        raise ValueError("APEL message ends inside a record (no final %%)")
    records = []
    for chunk in body.split("%%"):
        if not chunk.strip():
            continue
        record = {}
        for line in chunk.strip().splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"record line without a key-value pair: {line!r}")
            record[key.strip()] = value.strip()
        records.append(record)
    return header, records


def parse_message(text: str, header: str = JOB_HEADER) -> list[dict[str, str]]:
    """The records of a message that must be of kind ``header``."""
    found, records = split_message(text)
    if found != header:
        raise ValueError(f"not an {header.split(':')[0]} message: {found!r}")
    return records


def records_of(outgoing_dir: str, header: str = JOB_HEADER) -> list[dict[str, str]]:
    """All records of kind ``header`` in a dirq queue."""
    found = []
    for message in read_messages(outgoing_dir):
        kind, records = split_message(message)
        if kind == header:
            found.extend(records)
    return found


def validate(header: str, record: dict[str, str], now: dt.datetime | None = None) -> None:
    """Raise AssertionError naming the field if APEL's loader would reject ``record``."""
    rules = RULES[header]
    unknown = set(record) - set(rules["fields"])
    assert not unknown, f"{header}: fields APEL does not know: {sorted(unknown)}"
    for key in rules["mandatory"]:
        assert record.get(key, "").lower() not in NULLS, f"{header}: mandatory field {key} missing"
    for key in rules["int"]:
        if record.get(key, "").lower() not in NULLS:
            assert _is_int(record[key]), f"{header}: {key} = {record[key]!r} is not an integer"
            assert int(record[key]) >= 0, f"{header}: {key} = {record[key]!r} is negative"
    for key in rules["float"]:
        if record.get(key, "").lower() not in NULLS:
            assert _is_float(record[key]), f"{header}: {key} = {record[key]!r} is not a number"
    for key in rules["datetime"]:
        if record.get(key, "").lower() not in NULLS:
            assert _is_int(record[key]) and int(record[key]) > 0, (
                f"{header}: {key} = {record[key]!r} is not an epoch"
            )
    now = now or dt.datetime.now(dt.UTC)
    if header == JOB_HEADER:
        slt, sl = record.get("ServiceLevelType", ""), record.get("ServiceLevel", "")
        assert bool(slt) == bool(sl), "job record: ServiceLevelType and ServiceLevel go together"
        assert not slt or slt.lower() in VALID_SERVICE_LEVEL_TYPES, f"job record: ServiceLevelType {slt!r}"
        start, end = int(record["StartTime"]), int(record["EndTime"])
        assert start <= end, "job record: EndTime before StartTime"
        assert end <= (now + dt.timedelta(days=2)).timestamp(), "job record: EndTime in the future"
    if header == CLOUD_HEADER:
        assert record.get("Status", "unknown") in CLOUD_STATUSES, (
            f"cloud record: Status {record.get('Status')!r}"
        )
        if record.get("Status") == "completed":
            assert int(record["EndTime"]) >= int(record["StartTime"]), (
                "cloud record: EndTime before StartTime"
            )
    if header == SYNC_HEADER:
        assert 1 <= int(record["Month"]) <= 12, f"sync record: Month {record['Month']}"


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
