"""The measured scenarios. Each returns one Sample; the caller repeats and summarises.

Requests are LocalCloud's own counters (every HTTP request the cloud received during the
scenario, Keystone included); wall time is ``time.perf_counter``; client CPU time is the calling
threads' ``time.thread_time`` (the in-process LocalCloud serves requests on its own threads, so
its work is not the client's); process CPU time (``time.process_time``) is client and LocalCloud
together.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from JenniferDIRAC.Resources.Cloud.references import parse_reference

from .fleet import OURS, Fleet, ce_names

STOCK_REF_PREFIX = "cloud://"


class MeasurementError(RuntimeError):
    """A scenario did not do what it measures (the figure would be meaningless)."""


@dataclass
class Sample:
    requests: int
    wall_s: float
    cpu_s: float | None = None  # client threads only
    process_cpu_s: float | None = None  # every thread: client and the in-process LocalCloud
    detail: dict = field(default_factory=dict)
    by_call: dict[str, int] = field(default_factory=dict)


def _by_call(fleet: Fleet) -> dict[str, int]:
    return {" ".join(key): count for key, count in sorted(fleet.cloud.counters.snapshot().items())}


# --- SiteDirector monitoring pass --------------------------------------------------------------
def _job_status(ce, refs: list[str]) -> tuple[dict[str, str], float]:
    cpu = time.thread_time()
    result = ce.getJobStatus(refs)
    cpu = time.thread_time() - cpu
    if not result["OK"]:
        raise MeasurementError(f"getJobStatus failed on {ce.ceName}: {result['Message']}")
    return result["Value"], cpu


def monitoring_pass(fleet: Fleet, kind: str, ces: dict) -> Sample:
    """What one SiteDirector cycle asks of the CEs: ``getJobStatus`` over all pilots of each CE
    (one thread per queue, as SiteDirector.monitorPilots does), then ``getCEStatus`` of each CE
    (sequentially, as the submission loop's ``available()`` does)."""
    refs = {name: fleet.pilot_refs(kind, name) for name in ce_names()}
    if kind == OURS:
        # SiteDirector cycles are minutes apart, far beyond ListingCacheSeconds: a pass never
        # reuses the previous pass's listing (and the fleet was seeded behind the CEs' back)
        from JenniferDIRAC.Resources.Cloud.sharedlisting import invalidate_all

        invalidate_all()
    fleet.cloud.counters.reset()
    start, process_start = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=len(ces), thread_name_prefix="monitor") as pool:
        futures = {name: pool.submit(_job_status, ces[name], refs[name]) for name in ce_names()}
        answers = {name: future.result() for name, future in futures.items()}
    cpu = sum(c for _, c in answers.values())
    reported = {}
    for name in ce_names():
        started = time.thread_time()
        result = ces[name].getCEStatus()
        cpu += time.thread_time() - started
        if not result["OK"]:
            raise MeasurementError(f"getCEStatus failed on {name}: {result['Message']}")
        reported[name] = {"RunningJobs": result["RunningJobs"], "WaitingJobs": result["WaitingJobs"]}
    wall, process_cpu = time.perf_counter() - start, time.process_time() - process_start
    requests = fleet.cloud.counters.total()

    statuses: Counter[str] = Counter()
    for name, (states, _) in answers.items():
        if set(states) != set(refs[name]):
            raise MeasurementError(
                f"getJobStatus on {name} answered {len(states)} of {len(refs[name])} pilots")
        statuses.update(states.values())
    if statuses.get("Unknown"):
        raise MeasurementError(f"{statuses['Unknown']} pilots came back Unknown (the cloud calls failed)")
    detail = {"pilots": sum(len(r) for r in refs.values()), "statuses": dict(sorted(statuses.items())),
              "ce_status": reported, "ce_truth": fleet.truth(kind)}
    return Sample(requests, wall, cpu, process_cpu, detail, _by_call(fleet))


# --- submission --------------------------------------------------------------------------------
def submission(fleet: Fleet, kind: str, ce, count: int) -> Sample:
    """``submitJob(wrapper, "", count)`` on one CE; the VMs are removed again afterwards."""
    fleet.cloud.counters.reset()
    start, process_start = time.perf_counter(), time.process_time()
    result = ce.submitJob(str(fleet.wrapper), "", count)
    wall, process_cpu = time.perf_counter() - start, time.process_time() - process_start
    requests = fleet.cloud.counters.total()
    by_call = _by_call(fleet)
    if not result["OK"]:
        raise MeasurementError(f"submitJob failed on {ce.ceName}: {result['Message']}")
    refs = result["Value"]
    if kind == OURS:
        server_ids = fleet.server_ids_named({parse_reference(ref)[1] for ref in refs})
    else:
        server_ids = [ref[len(STOCK_REF_PREFIX):] for ref in refs]
    fleet.remove_servers(server_ids)
    if len(refs) != count or len(server_ids) != count:
        raise MeasurementError(f"submitJob created {len(refs)} of {count} VMs on {ce.ceName}")
    if len(result.get("PilotStampDict", {})) != count:
        stamps = len(result.get("PilotStampDict", {}))
        raise MeasurementError(f"submitJob returned {stamps} stamps for {count} VMs")
    return Sample(requests, wall, None, process_cpu, {"created": len(refs)}, by_call)


# --- repetitions -------------------------------------------------------------------------------
def repeat(measure, times: int, budget_s: float) -> list[Sample]:
    """Up to `times` samples of `measure()`, but no new one once it would likely end past
    `budget_s` seconds (the first always runs)."""
    samples: list[Sample] = []
    start = time.perf_counter()
    while len(samples) < times:
        began = time.perf_counter()
        samples.append(measure())
        last = time.perf_counter() - began
        if time.perf_counter() - start + last > budget_s:
            break
    return samples


# --- VMDirector cycle ---------------------------------------------------------------------------
@dataclass
class DirectorInputs:
    """What the VMDirector reads from its databases for one CE, prepared in memory."""

    pilots: dict
    records: dict


def director_inputs(fleet: Fleet, now: datetime) -> dict[str, DirectorInputs]:
    """PilotAgentsDB and VMDB rows matching the seeded VMs, as the policy takes them."""
    from JenniferDIRAC.Resources.Cloud.references import pilot_reference
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import PilotRecord, VMRecord

    pilot_status = {"ACTIVE": "Running", "SHUTOFF": "Running", "BUILD": "Submitted", "ERROR": "Submitted"}
    inputs = {}
    for name in ce_names():
        pilots, records = {}, {}
        for index, vm in enumerate(fleet.vms[OURS][name]):
            ref = pilot_reference(name, vm.name)
            created = datetime.fromtimestamp(vm.created, tz=timezone.utc)
            running = vm.status in ("ACTIVE", "SHUTOFF")
            pilots[ref] = PilotRecord(ref, pilot_status[vm.status], last_update=now - timedelta(minutes=5),
                                      submitted=created, job_id=index + 1 if running else 0)
            records[vm.name] = VMRecord(vm.name, name, pilot_reference=ref, created=created,
                                        started=created + timedelta(minutes=3) if running else None,
                                        last_heartbeat=now - timedelta(minutes=2) if running else None)
        inputs[name] = DirectorInputs(pilots, records)
    return inputs


def vmdirector_cycle(
    fleet: Fleet, backends: dict, inputs: dict[str, DirectorInputs], now: datetime
) -> Sample:
    """For each CE: ONE backend listing of the VMs it owns, then the lifecycle policy's decisions
    (not applied, so every repetition sees the same fleet)."""
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import CEView, decide

    fleet.cloud.counters.reset()
    start, cpu_start, process_start = time.perf_counter(), time.thread_time(), time.process_time()
    policy_cpu, listed = 0.0, 0
    actions: Counter[str] = Counter()
    for name in ce_names():
        backend, owner = backends[name]
        vms = backend.list_vms(owner)
        listed += len(vms)
        policy_start = time.thread_time()
        view = CEView(owner=owner, vms=vms, pilots=inputs[name].pilots, records=inputs[name].records,
                      backoffs={}, now=now)
        decision = decide(view)
        policy_cpu += time.thread_time() - policy_start
        actions.update(type(action).__name__ for action in decision.actions)
    cpu, process_cpu = time.thread_time() - cpu_start, time.process_time() - process_start
    wall = time.perf_counter() - start
    expected = fleet.total(OURS)
    if listed != expected:
        raise MeasurementError(f"the VMDirector listings saw {listed} of our {expected} VMs")
    detail = {"vms": listed, "policy_cpu_s": policy_cpu, "listing_cpu_s": cpu - policy_cpu,
              "actions": dict(sorted(actions.items()))}
    return Sample(fleet.cloud.counters.total(), wall, cpu, process_cpu, detail, _by_call(fleet))


# --- the SiteDirector's whole cycle --------------------------------------------------------------
def _tally(fleet: Fleet) -> dict[str, int]:
    counters = fleet.cloud.counters
    return {"requests": counters.total(), "compute_requests": counters.total("compute"),
            "bytes": counters.bytes(), "compute_bytes": counters.bytes("compute"),
            "listing_bytes": counters.bytes("compute", "GET", "/v2.1/servers/detail")}


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def _cleanup_and_status(ce, refs: list[str]) -> tuple[dict[str, str], float, str]:
    """cleanupPilots then getJobStatus, as SiteDirector._monitorPilotsPerQueue; a failed
    cleanupPilots is only logged there too (the stock CE's fails when another queue's thread
    deleted a VM it listed: 404 on its DELETE), so it is returned, not raised."""
    cpu = time.thread_time()
    cleaned = ce.cleanupPilots()
    result = ce.getJobStatus(refs)
    if not result["OK"]:
        raise MeasurementError(f"getJobStatus failed on {ce.ceName}: {result['Message']}")
    return result["Value"], time.thread_time() - cpu, "" if cleaned["OK"] else str(cleaned["Message"])[:200]


def sitedirector_cycle(fleet: Fleet, kind: str, ces: dict, submit: int) -> Sample:
    """One SiteDirector.execute: submitPilots (``available()``, i.e. getCEStatus, of each queue,
    then ``submitJob`` of `submit` VMs on the first), then monitorPilots (one thread per queue:
    ``cleanupPilots`` then ``getJobStatus`` of its pilots). Monitoring = everything but submitJob.
    The VMs submitted stay (BUILD), as a real cycle's do."""
    refs = {name: fleet.pilot_refs(kind, name) for name in ce_names()}
    fleet.cloud.counters.reset()
    start, process_start = time.perf_counter(), time.process_time()
    cpu = time.thread_time()
    for name in ce_names():
        result = ces[name].available()
        if not result["OK"]:
            raise MeasurementError(f"available() failed on {name}: {result['Message']}")
    before_submit = _tally(fleet)
    submitted = ces[ce_names()[0]].submitJob(str(fleet.wrapper), "", submit)
    if not submitted["OK"] or len(submitted["Value"]) != submit:
        raise MeasurementError(f"submitJob failed on {ce_names()[0]}: {submitted.get('Message', submitted)}")
    after_submit = _tally(fleet)
    cpu = time.thread_time() - cpu
    with ThreadPoolExecutor(max_workers=len(ces), thread_name_prefix="monitor") as pool:
        futures = {name: pool.submit(_cleanup_and_status, ces[name], refs[name]) for name in ce_names()}
        answers = {name: future.result() for name, future in futures.items()}
    cpu += sum(c for _, c, _ in answers.values())
    wall, process_cpu = time.perf_counter() - start, time.process_time() - process_start
    total = _tally(fleet)
    monitoring = _minus(total, _minus(after_submit, before_submit))
    statuses: Counter[str] = Counter()
    for name, (states, _, _) in answers.items():
        if set(states) != set(refs[name]):
            raise MeasurementError(f"getJobStatus on {name} answered {len(states)} of {len(refs[name])} pilots")
        statuses.update(states.values())
    detail = {"pilots": sum(len(r) for r in refs.values()), "statuses": dict(sorted(statuses.items())),
              "monitoring": monitoring, "total": total, "submitted": submit,
              "deletes": fleet.cloud.counters.get("compute", "DELETE", "/v2.1/servers/<server_id>"),
              "views": views(),
              "cleanup_failures": {name: error for name, (_, _, error) in answers.items() if error}}
    return Sample(total["requests"], wall, cpu, process_cpu, detail, _by_call(fleet))


def views() -> list[dict]:
    """Full and incremental listings so far of each of our shared views."""
    from JenniferDIRAC.Resources.Cloud import sharedlisting

    return [{"full": p.view.full_listings, "incremental": p.view.incremental_listings,
             "newest": str(p.view._newest)} for p in list(sharedlisting._REGISTRY._projects.values())]


def expire_listings(forget_views: bool = False) -> None:
    """What the minutes between two SiteDirector cycles do to our CEs' shared listing: past
    ListingCacheSeconds it is asked again, the incremental view kept (a refresh of what changed);
    `forget_views`: as in a new process, the next listing is a full one."""
    from JenniferDIRAC.Resources.Cloud import sharedlisting

    for project in list(sharedlisting._REGISTRY._projects.values()):
        if forget_views:
            project.invalidate()
        project.listing.invalidate()
        project.limits.invalidate()


# --- the VMDirector's cycle through its own listing code ------------------------------------------
def real_director_cycle(fleet: Fleet, cebackends, now: datetime) -> Sample:
    """One VMDirector cycle's cloud side as Director/cloudaccess.py does it: the CEs of the
    project share ONE listing (full first, then changes-since), then VMLifecycle.decide per CE
    over pilot/VM records prepared in memory (no MariaDB: the decided actions are counted, not
    applied)."""
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import CEView, decide

    inputs = director_inputs(fleet, now)
    fleet.cloud.counters.reset()
    start, cpu_start, process_start = time.perf_counter(), time.thread_time(), time.process_time()
    actions: Counter[str] = Counter()
    listed = 0
    with cebackends.one_listing_per_project():
        for name in ce_names():
            config, _backend, vms = cebackends.listing(name, fleet.ce_parameters(OURS, name))
            owner = config.owner()
            own = [vm for vm in vms if owner.owns(vm.owner)]
            listed += len(own)
            view = CEView(owner=owner, vms=own, pilots=inputs[name].pilots, records=inputs[name].records,
                          backoffs={}, now=now)
            actions.update(type(action).__name__ for action in decide(view).actions)
    cpu, process_cpu = time.thread_time() - cpu_start, time.process_time() - process_start
    wall = time.perf_counter() - start
    total = _tally(fleet)
    detail = {"vms": listed, "actions": dict(sorted(actions.items())), "total": total, "monitoring": total}
    return Sample(total["requests"], wall, cpu, process_cpu, detail, _by_call(fleet))
