"""Accounting data of several cloud sites, two VOs and 40 weeks, relative to a given "now".

Each week of the plot gets, per site and VO, one VM (as the VMDirector accounts it: a VMDB
accounting record) and the job that ran in it (as DIRAC's JobWrapper accounts it). Records sit
inside one day that lies inside one week-long accounting bucket (epoch multiples of 604800 s,
DIRAC's bucket grid) and one two-day bucket, so whatever bucket length DIRAC picks for the span
(1 d, 2 d or 1 week) each record lands in one bucket of one week: sums per site and week can be
checked exactly.

The loopback DIRAC server's AccountingDB is shared by every test of a pytest session (the
fleet page's plot test loads this dataset too, an e2e VM adds its record): each load names its
own sites and CEs with a tag of its own (``dataset(now, load_tag())``), so a test reads only
its own records (``--filter Site=...`` of ``data["sites"]``) whatever ran before it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict

SITES = ("CLOUD.LPNHE.fr", "CLOUD.Napoli.it", "CLOUD.IN2P3-IRES.fr")
VOS = ("belle", "t2k.org")
WEEK = 7 * 86400
TWO_DAYS = 2 * 86400
#: per site (its name before a load's tag): (CE, flavor properties, CE option HS06PerCore)
SITE_CLOUDS = {
    "CLOUD.LPNHE.fr": ("openstack.lpnhe.fr", {"accounting:benchmark_name": "HS06", "accounting:benchmark_value": "11.5"}, 10.0),
    "CLOUD.Napoli.it": ("cloud.na.infn.it", {}, 10.0),
    "CLOUD.IN2P3-IRES.fr": ("nova.iphc.cnrs.fr", {}, 12.5),
}  # fmt: skip


def load_tag() -> str:
    """A tag of one load of the dataset, unique in the AccountingDB (8 hex)."""
    return uuid.uuid4().hex[:8]


def tagged(name: str, tag: str) -> str:
    """``CLOUD.LPNHE.fr`` -> ``CLOUD.LPNHE-<tag>.fr``: a site (or CE host) name of one load."""
    head, _, country = name.rpartition(".")
    return f"{head}-{tag}.{country}"


def benchmark_of(vm: dict) -> float:
    """HS06 per core of a VM record: its flavor's benchmark property, else its CE option."""
    return float(vm["flavor_properties"].get("accounting:benchmark_value", vm["hs06"]))


def weeks(now: int, count: int = 40) -> list[tuple[int, int]]:
    """(week bucket start, start of the day used in it) for the full weeks of the last
    ``count`` weeks that end before ``now`` (epoch seconds)."""
    first = (now - count * WEEK) // WEEK * WEEK + WEEK
    slots = []
    for k in range(count):
        week = first + k * WEEK
        day = -(-week // TWO_DAYS) * TWO_DAYS  # first two-day bucket inside the week
        if day + 86400 > now - 3600:
            break
        slots.append((week, day))
    return slots


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None).isoformat()


def dataset(now: int, tag: str) -> dict:
    """{"vms": [...], "jobs": [...], "sites": [the load's site names], "tag": tag} (JSON-able;
    times as naive UTC ISO strings); sites, CEs and VM names carry ``tag``."""
    vms, jobs = [], []
    for k, (week, day) in enumerate(weeks(now)):
        for s, base in enumerate(SITES):
            ce, properties, hs06 = SITE_CLOUDS[base]
            site, ce = tagged(base, tag), tagged(ce, tag)
            bench = float(properties.get("accounting:benchmark_value", hs06))
            for v, vo in enumerate(VOS):
                hours = 2 + (k * 5 + s * 3 + v * 7) % 17  # 2..18 h, inside the day
                cores = (4, 8)[(k + s + v) % 2]
                start = day + 1800
                end = start + hours * 3600
                cpu = int(hours * 3600 * cores * (0.70 + 0.02 * ((k + v) % 10)))
                name = f"jdirac-{tag}{k:04d}{s:02d}{v:02d}" + "0" * 16
                vms.append(
                    {
                        "vm_name": name,
                        "vm_id": f"{k:08x}-{s:04x}-{v:04x}-0000-000000000000",
                        "ce": ce,
                        "site": site,
                        "vo": vo,
                        "profile": f"{vo.split('.')[0]}-{cores}core",
                        "flavor": f"m1.{cores}core",
                        "cores": cores,
                        "ram_mb": 2048 * cores,
                        "created": _iso(start - 120),
                        "started": _iso(start),
                        "ended": _iso(end),
                        "end": _iso(end),
                        "wall_seconds": end - start,
                        "cpu_seconds": cpu,
                        "hs06": hs06,
                        "flavor_properties": properties,
                    }
                )
                job_cpu = cpu - 60 * cores
                jobs.append(
                    {
                        "start": _iso(start + 300),
                        "end": _iso(end - 300),
                        "values": {
                            "User": "loopbackuser",
                            "UserGroup": f"{vo.split('.')[0]}_user",
                            "JobGroup": f"mc-{k:02d}",
                            "JobType": "User",
                            "JobClass": "unknown",
                            "ProcessingType": "unknown",
                            "Site": site,
                            "FinalMajorStatus": "Done",
                            "FinalMinorStatus": "Execution Complete",
                            "CPUTime": job_cpu,
                            "NormCPUTime": int(job_cpu * bench),
                            "ExecTime": (end - start - 600) * cores,
                            "InputDataSize": 0,
                            "OutputDataSize": 0,
                            "InputDataFiles": 0,
                            "OutputDataFiles": 0,
                            "DiskSpace": 0,
                            "InputSandBoxSize": 0,
                            "OutputSandBoxSize": 0,
                            "ProcessedEvents": 0,
                        },
                    }
                )
            if k % 10 == 3:  # a fizzle and a VM that never started, per site
                for suffix, started, wall in (("f", True, 300), ("n", False, 0)):
                    start = day + 30 * 3600 - 86400  # still inside the day
                    vms.append(
                        {
                            "vm_name": f"jdirac-{tag}{k:04d}{s:02d}{suffix}" + "0" * 17,
                            "vm_id": "",
                            "ce": ce,
                            "site": site,
                            "vo": VOS[0],
                            "profile": "belle-4core",
                            "flavor": "m1.4core",
                            "cores": 4,
                            "ram_mb": 8192,
                            "created": _iso(start - 60),
                            "started": _iso(start) if started else None,
                            "ended": _iso(start + wall) if started else None,
                            "deleted": _iso(start + wall + 60),
                            "end": _iso(start + wall) if started else _iso(start + 60),
                            "wall_seconds": wall,
                            "cpu_seconds": 20 if started else 0,
                            "hs06": hs06,
                            "flavor_properties": properties,
                        }
                    )
    return {"vms": vms, "jobs": jobs, "sites": [tagged(site, tag) for site in SITES], "tag": tag}


def _week_of(iso: str) -> int:
    epoch = int(dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp())
    return epoch // WEEK * WEEK


def expected_vm_sums(data: dict, field: str, vo: str | None = None, fizzle_seconds: int = 600) -> dict:
    """{site: {week: sum}} of a VirtualMachine field, computed from the records themselves."""
    sums: dict = defaultdict(lambda: defaultdict(float))
    for vm in data["vms"]:
        if vo and vm["vo"] != vo:
            continue
        wall, cores, bench = vm["wall_seconds"], vm["cores"], benchmark_of(vm)
        cpu = min(vm["cpu_seconds"], wall * cores)
        value = {
            "NormCPUTime": cpu * bench,
            "CPUTime": cpu,
            "WallTime": wall,
            "CoreWallTime": wall * cores,
            "NormCoreWallTime": wall * cores * bench,
            "VMs": 1,
            "Unproductive": 1 if (not vm["started"] or wall < fizzle_seconds) else 0,
        }[field]
        sums[vm["site"]][_week_of(vm["started"] or vm["created"])] += value
    return sums


def expected_job_sums(data: dict, field: str) -> dict:
    sums: dict = defaultdict(lambda: defaultdict(float))
    for job in data["jobs"]:
        sums[job["values"]["Site"]][_week_of(job["start"])] += job["values"][field]
    return sums
