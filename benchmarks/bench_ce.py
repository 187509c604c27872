"""JenniferDIRAC's cloud CE against DIRAC's stock CloudComputingElement, on the same cloud.

For every N and each CE kind, a worker process starts LocalCloud in-process with a per-request
latency, seeds N VMs of each kind over 4 CEs in one project, and measures:

- one SiteDirector monitoring pass: ``getJobStatus`` over all pilots of each CE (one thread per
  CE, as SiteDirector.monitorPilots) and ``getCEStatus`` of each CE;
- one submission of ``--submit`` VMs with ``submitJob`` (a small dummy pilot wrapper);
- the VMDirector cycle (ours only): one listing per CE and the lifecycle policy;
- the peak memory of the worker process (ru_maxrss), and how much the measurements raised it.

Prints one table (median and min-max over the repetitions, stock/ours ratios), writes the JSON
and a PNG plot to ``benchmarks/results/<UTC timestamp>.{json,png}``::

    .venv/bin/python benchmarks/bench_ce.py                 # N = 100, 1000, 5000; 20 ms
    .venv/bin/python benchmarks/bench_ce.py --latency-ms 50 --repeat 3
    .venv/bin/python benchmarks/bench_ce.py --quick --latency-ms 0   # smoke test, seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cebench import report, scenarios  # noqa: E402
from benchmarks.cebench.fleet import (  # noqa: E402
    CE_KINDS, OURS, Fleet, ce_names, shutdown_ces, start_fleet,
)
from benchmarks.cebench.workers import environment, log, quiet_ce_logging, run_worker  # noqa: E402
from benchmarks.cebench.stats import Summary  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results"
QUICK_SIZES = (8, 20)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000",
                        help="comma-separated N: VMs of each CE kind in the project (default %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="latency LocalCloud adds to every request (default %(default)s)")
    parser.add_argument("--per-server-ms", type=float, default=10.0,
                        help="latency LocalCloud adds to a detailed listing per server it returns "
                             "(real Nova: ~8-13 ms; default %(default)s)")
    parser.add_argument("--changes", default="1,10",
                        help="comma-separated %% of VMs that end between two cycles (default %(default)s)")
    parser.add_argument("--cycle-submit", type=int, default=5,
                        help="VMs submitted in each SiteDirector cycle (default %(default)s)")
    parser.add_argument("--cycle-gap-s", type=float, default=120.0,
                        help="cloud seconds between two cycles (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="repetitions of the monitoring pass and the VMDirector cycle "
                             "(default %(default)s)")
    parser.add_argument("--submit", type=int, default=100, help="VMs per submitJob (default %(default)s)")
    parser.add_argument("--submit-repeat", type=int, default=3,
                        help="repetitions of the submission (default %(default)s)")
    parser.add_argument("--budget-s", type=float, default=20.0,
                        help="no further repetition of a measurement once it would end past this many "
                             "seconds; the first always runs (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: N = {','.join(map(str, QUICK_SIZES))}, 2 repetitions, "
                             "5 VMs per submission")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results directory (default benchmarks/results)")
    parser.add_argument("--worker-timeout-s", type=float, default=1800.0,
                        help="a worker process still running after this many seconds (a CE stuck on a "
                             "call, or the stock CE at a large N with a high --per-server-ms) ends the "
                             "run instead of stalling it (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fleet's states and ages")
    parser.add_argument("--worker", nargs=3, metavar=("N", "KIND", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.submit, args.submit_repeat = ",".join(map(str, QUICK_SIZES)), 2, 5, 2
        args.cycle_submit = 2
    try:
        args.changes = sorted({float(c) for c in str(args.changes).split(",") if c.strip()})
    except ValueError:
        parser.error(f"--changes: expected comma-separated percentages, got {args.changes!r}")
    if not args.changes or not all(0 < c <= 100 for c in args.changes):
        parser.error("--changes: each percentage must be in (0, 100]")
    if args.per_server_ms < 0 or args.cycle_submit < 1:
        parser.error("--per-server-ms must not be negative, --cycle-submit at least 1")
    try:
        args.sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    if not args.sizes or args.sizes[0] < len(ce_names()):
        parser.error(f"--sizes: every N must be at least {len(ce_names())} (one VM per CE)")
    for option in ("repeat", "submit", "submit_repeat"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.latency_ms < 0 or args.budget_s < 0:
        parser.error("--latency-ms and --budget-s must not be negative")
    if args.worker_timeout_s <= 0:
        parser.error("--worker-timeout-s must be positive")
    return args


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- worker: one N, one CE kind, in its own process ---------------------------------------------
def _entry(n: int, kind: str, scenario: str, samples: list[scenarios.Sample], requested: int) -> dict:
    cpus = [s.cpu_s for s in samples if s.cpu_s is not None]
    process_cpus = [s.process_cpu_s for s in samples if s.process_cpu_s is not None]
    return {
        "n": n, "ce": kind, "scenario": scenario,
        "repetitions": len(samples), "bounded": len(samples) < requested,
        "requests": Summary.of([s.requests for s in samples]).to_dict(),
        "wall_s": Summary.of([s.wall_s for s in samples]).to_dict(),
        "cpu_s": Summary.of(cpus).to_dict() if cpus else None,
        "process_cpu_s": Summary.of(process_cpus).to_dict() if process_cpus else None,
        "requests_per_ce": Summary.of([s.requests / len(ce_names()) for s in samples]).to_dict()
        if scenario != "submission" else None,
        "samples": {"requests": [s.requests for s in samples], "wall_s": [s.wall_s for s in samples]},
        "detail": samples[-1].detail,
        "by_call": samples[-1].by_call,
    }


def _warm_up(fleet: Fleet, ces: dict) -> dict:
    """One getCEStatus per CE before measuring: authentication and image/flavor resolution are
    paid once per CE object, which the SiteDirector keeps from cycle to cycle."""
    fleet.cloud.counters.reset()
    start = time.perf_counter()
    for name, ce in ces.items():
        result = ce.getCEStatus()
        if not result["OK"]:
            raise scenarios.MeasurementError(f"warm-up getCEStatus failed on {name}: {result['Message']}")
    return {"requests": fleet.cloud.counters.total(), "wall_s": time.perf_counter() - start}


def _director_backends(fleet: Fleet) -> dict:
    """One backend per CE, built from the CE options as the VMDirector builds it."""
    from JenniferDIRAC.Resources.Cloud.backends import make_backend
    from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig

    backends = {}
    for name in ce_names():
        config = CloudCEConfig.from_ce_parameters(name, fleet.ce_parameters(OURS, name))
        backend = make_backend(config)
        backend.list_vms(config.owner())  # authenticated and warm, as a long-running agent is
        backends[name] = (backend, config.owner())
    return backends


def worker(n: int, kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    fleet = start_fleet(args.latency_ms / 1000.0, workdir)
    fleet.cloud.compute.detail_seconds_per_server = args.per_server_ms / 1000.0
    try:
        # Connect and resolve before seeding: a SiteDirector or an agent pays this once, not per N.
        ces = {name: fleet.make_ce(kind, name) for name in ce_names()}
        warm = _warm_up(fleet, ces)
        backends = _director_backends(fleet) if kind == OURS else {}
        started = time.perf_counter()
        fleet.seed(n, args.seed)
        seeding_s = time.perf_counter() - started
        rss_before = _max_rss_mib()
        results = []

        log(f"N={n} {kind}: monitoring pass")
        samples = scenarios.repeat(lambda: scenarios.monitoring_pass(fleet, kind, ces),
                                   args.repeat, args.budget_s)
        results.append(_entry(n, kind, "monitoring", samples, args.repeat))

        log(f"N={n} {kind}: submission of {args.submit} VMs")
        first = ces[ce_names()[0]]
        samples = scenarios.repeat(lambda: scenarios.submission(fleet, kind, first, args.submit),
                                   args.submit_repeat, args.budget_s)
        results.append(_entry(n, kind, "submission", samples, args.submit_repeat))

        if kind == OURS:
            log(f"N={n} {kind}: VMDirector cycle")
            now = fleet.cloud.clock.utcnow()
            inputs = scenarios.director_inputs(fleet, now)
            samples = scenarios.repeat(lambda: scenarios.vmdirector_cycle(fleet, backends, inputs, now),
                                       args.repeat, args.budget_s)
            results.append(_entry(n, kind, "vmdirector", samples, args.repeat))
            for backend, _ in backends.values():
                backend.close()
        results += _cycles(fleet, n, kind, ces, args)  # last: its cycles submit and delete VMs
        rss_after = _max_rss_mib()
        shutdown_ces(ces)
    finally:
        fleet.cloud.stop()
        shutil.rmtree(fleet.workdir, ignore_errors=True)
    return {"results": results, "warmup": {"n": n, "ce": kind, **warm, "seeding_s": seeding_s},
            "memory": {"n": n, "ce": kind, "max_rss_mib": rss_after, "rss_before_mib": rss_before,
                       "growth_mib": rss_after - rss_before}}


def _cycles(fleet: Fleet, n: int, kind: str, ces: dict, args: argparse.Namespace) -> list[dict]:
    """The SiteDirector's whole cycle: a first one, then one after each change of --changes % of
    the VMs; then (ours) the VMDirector's cycle through Director/cloudaccess.py the same way."""
    import random

    from benchmarks.cebench.fleet import change

    rng = random.Random(args.seed + 1)
    results = []

    def measure(scenario, call):
        log(f"N={n} {kind}: {scenario}")
        results.append(_entry(n, kind, scenario, [call()], 1))

    scenarios.expire_listings(forget_views=True)  # a SiteDirector process starts with full listings
    measure("sd_first", lambda: scenarios.sitedirector_cycle(fleet, kind, ces, args.cycle_submit))
    for percent in args.changes:
        changed = change(fleet, percent / 100, rng, args.cycle_gap_s)
        scenarios.expire_listings()
        measure(f"sd_steady_{percent:g}", lambda: scenarios.sitedirector_cycle(fleet, kind, ces, args.cycle_submit))
        results[-1]["detail"]["changed"] = changed
    if kind == OURS:
        from DIRAC import gLogger

        from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
        from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import NullDirectorMetrics

        cebackends = CEBackends(NullDirectorMetrics(), gLogger)
        scenarios.expire_listings(forget_views=True)  # a VMDirector process starts with a full listing
        measure("vmd_first", lambda: scenarios.real_director_cycle(fleet, cebackends, fleet.cloud.clock.utcnow()))
        for percent in args.changes:
            changed = change(fleet, percent / 100, rng, args.cycle_gap_s)
            measure(f"vmd_steady_{percent:g}",
                    lambda: scenarios.real_director_cycle(fleet, cebackends, fleet.cloud.clock.utcnow()))
            results[-1]["detail"]["changed"] = changed
        for config_backend in cebackends.cached.values():
            config_backend[1].close()
    return results


def _worker_main(args: argparse.Namespace) -> int:
    n, kind, output = int(args.worker[0]), args.worker[1], Path(args.worker[2])
    if kind not in CE_KINDS:
        raise SystemExit(f"--worker: unknown CE kind {kind!r}")
    quiet_ce_logging()
    # Files under the parent's temporary directory, so they go even if this process is killed.
    workdir = output.parent / f"{n}-{kind}"
    workdir.mkdir()
    output.write_text(json.dumps(worker(n, kind, args, workdir)))
    return 0


# --- parent: run the workers, then report ------------------------------------------------------
def _worker_argv(args: argparse.Namespace, n: int, kind: str, output: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", str(n), kind, str(output),
            "--latency-ms", str(args.latency_ms), "--repeat", str(args.repeat), "--submit", str(args.submit),
            "--submit-repeat", str(args.submit_repeat), "--budget-s", str(args.budget_s),
            "--seed", str(args.seed), "--sizes", str(n), "--per-server-ms", str(args.per_server_ms),
            "--changes", ",".join(f"{c:g}" for c in args.changes), "--cycle-submit", str(args.cycle_submit),
            "--cycle-gap-s", str(args.cycle_gap_s)]


def run(args: argparse.Namespace) -> dict:
    results, memory, warmup = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-ce-") as tmp:
        for n in args.sizes:
            for kind in CE_KINDS:
                output = Path(tmp) / f"{n}-{kind}.json"
                log(f"N={n} {kind}: worker process")
                part = run_worker(_worker_argv(args, n, kind, output), output, f"N={n} {kind}",
                                  args.worker_timeout_s)
                results += part["results"]
                memory.append(part["memory"])
                warmup.append(part["warmup"])
    return {
        "schema": 1,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "settings": {"sizes": args.sizes, "latency_ms": args.latency_ms, "repeat": args.repeat,
                     "per_server_ms": args.per_server_ms, "changes_percent": args.changes,
                     "cycle_submit": args.cycle_submit, "cycle_gap_s": args.cycle_gap_s,
                     "submit_count": args.submit, "submit_repeat": args.submit_repeat,
                     "budget_s": args.budget_s, "worker_timeout_s": args.worker_timeout_s,
                     "quick": args.quick, "ces": ce_names(), "seed": args.seed},
        "environment": environment(),
        "notes": _notes(results, args),
        "warmup": warmup,
        "results": results,
        "memory": memory,
        "ratios": report.ratios(results, args.sizes),
        "targets": report.targets(results, args),
        "cycles": report.cycle_rows(results, args.sizes, args.changes),
    }


def _notes(results: list[dict], args: argparse.Namespace) -> list[str]:
    notes = []
    bounded = [f"{r['ce']} {r['scenario']} N={r['n']}: {r['repetitions']}" for r in results if r["bounded"]]
    if bounded:
        notes.append(f"fewer repetitions than asked (time budget {args.budget_s:g} s per measurement): "
                     + "; ".join(bounded))
    return notes + [
        "requests: every HTTP request LocalCloud received (Keystone included), from its counters",
        "monitoring pass: getJobStatus over all pilots of each of the 4 CEs, one thread per CE as "
        "SiteDirector.monitorPilots, then getCEStatus of each CE; CE objects are kept between "
        "passes as the SiteDirector keeps them (one warm-up getCEStatus per CE before measuring); "
        "our CEs share one listing and quota reading per project (ListingCacheSeconds, default 10 s), "
        "forgotten before every pass, as SiteDirector cycles are minutes apart",
        "stock CE: DIRAC's CloudComputingElement with libcloud's OpenStack driver configured as its "
        "docstring shows (Driver_ex_force_auth_url, Driver_ex_force_auth_version = 3.x_password, "
        "Driver_ex_tenant_name, CloudAuth ini); libcloud's default API 1.1 lists one page of servers",
        "both fleets share the project: N VMs of ours (owner metadata) and N named VMDIRAC3_<8 hex>",
        "our CE ran without VMDB (no VMStateClient configured): no backoff lookup, no VM records",
        "client CPU s: thread CPU time of the calling threads (LocalCloud serves on its own threads); "
        "process CPU s: client and in-process LocalCloud together (time.process_time)",
        "RunningJobs seen: sum over the 4 CEs of getCEStatus()['RunningJobs'] (actual: ACTIVE VMs of "
        "that kind); the stock CE counts every VMDIRAC3_ VM it lists, of any CE",
        "real cycles (sd_*, vmd_*): one sample each, in order: a first cycle (full listings), then "
        "for each --changes %: that share of each kind's VMs turned SHUTOFF one after another over "
        "--cycle-gap-s of the cloud's clock, then the next cycle; seeded VMs were last updated when "
        "created (up to 3 days before); monitoring = all of the SiteDirector cycle but submitJob "
        "(available()/getCEStatus of each CE, cleanupPilots and getJobStatus); bytes: response "
        "bodies LocalCloud sent",
        "SiteDirector cycle, stock: the queues' cleanupPilots threads list the same project and "
        "delete the same stopped VMs; one that finds a VM already deleted by another gets 404 and "
        "returns S_ERROR (counted in detail.cleanup_failures; the SiteDirector only logs it)",
        "SiteDirector cycle, ours: no PilotAgentsDB here, so cleanupPilots finds no final pilot and "
        "deletes nothing (the stock CE deletes every stopped VM it lists)",
        "VMDirector cycle (vmd_*): Director/cloudaccess.py's CEBackends (one listing per project, "
        "full then changes-since) + VMLifecycle.decide; without MariaDB: SQL statements, the deletions "
        "and their cost are not measured",
        "VMDirector cycle: in-process, without MariaDB or PilotAgentsDB: per CE ONE backend listing "
        "(openstacksdk) + VMLifecycle.decide over pilot/VM records prepared in memory; the decided "
        "actions are counted, not applied",
        "memory: ru_maxrss of the worker process (one per N and CE kind, LocalCloud with 2N VMs "
        "in-process included) at the end, and its growth during the measurements",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A terminated run still stops its worker, its LocalCloud and removes its temporary files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.worker:
        return _worker_main(args)
    doc = run(args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path, png_path = args.out / f"{stamp}.json", args.out / f"{stamp}.png"
    report.write_json(doc, json_path)
    report.plot(doc, png_path)
    print(report.table(doc))
    print(report.cycle_table(doc))
    print(report.targets_text(doc["targets"]))
    print("\n".join(f"note: {note}" for note in doc["notes"]))
    print(f"JSON: {json_path}\nplot: {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
