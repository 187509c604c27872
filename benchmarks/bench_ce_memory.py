"""Memory of a CE process over many SiteDirector cycles: JenniferDIRAC's CE and DIRAC's stock CloudCE.

For each CE kind a worker process starts LocalCloud in-process, seeds N VMs of each kind over 4 CEs
in one project (benchmarks/cebench, as bench_ce.py), keeps the 4 CE objects as a SiteDirector does
and runs ``--cycles`` SiteDirector cycles: ``--ended`` % of the kind's VMs end (SHUTOFF) over the
gap between two cycles and the ones ended in the cycle before are deleted (as the VMDirector, or
the stock CE's own cleanupPilots, does); then ``available()`` of each CE, ``submitJob`` of as many
VMs as ended on one CE (in turn), and per CE in threads ``cleanupPilots`` then ``getJobStatus``
over its live pilots. So the fleet stays at N VMs while its VMs change.

Every ``--sample-every`` cycles (after ``gc.collect()``) it records the process's resident memory
(/proc/self/statm) and the memory tracemalloc traces, and judges the growth from ``--from-cycle``
to the last cycle: the least-squares slope of traced memory over those samples times the cycles
between them must stay under ``--flat-mib``. The tracemalloc snapshot diff between those two
cycles (top entries) says what grew. Prints a table, writes JSON to
``benchmarks/results/<UTC timestamp>-ce-memory.json``::

    .venv/bin/python benchmarks/bench_ce_memory.py                    # N = 1000, 200 cycles, both CEs
    .venv/bin/python benchmarks/bench_ce_memory.py --ce ours --n 5000
    .venv/bin/python benchmarks/bench_ce_memory.py --quick            # smoke test, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cebench import scenarios  # noqa: E402
from benchmarks.cebench.fleet import CE_KINDS, OURS, Fleet, ce_names, start_fleet  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
WORKER_TIMEOUT_S = 3600
TOP_GROWTH = 10
SEED_BATCH = 100  # VMs per submitJob when the fleet is built through the CE
#: Deleted servers stay listed (changes-since) this many cycles, then LocalCloud forgets them, as
#: Nova's archiving does; otherwise the cloud, in this same process, would grow by itself.
DELETED_KEPT_CYCLES = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="VMs of each CE kind (default %(default)s)")
    parser.add_argument("--cycles", type=int, default=200, help="SiteDirector cycles (default %(default)s)")
    parser.add_argument("--sample-every", type=int, default=10,
                        help="cycles between two memory samples (default %(default)s)")
    parser.add_argument("--from-cycle", type=int, default=20,
                        help="growth is judged from this cycle on; the first cycles fill caches and "
                             "import code (default %(default)s)")
    parser.add_argument("--ended", type=float, default=1.0,
                        help="%% of the kind's VMs that end between two cycles (default %(default)s)")
    parser.add_argument("--cycle-gap-s", type=float, default=60.0,
                        help="cloud seconds between two cycles (default %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="latency LocalCloud adds to every request (default %(default)s)")
    parser.add_argument("--flat-mib", type=float, default=2.0,
                        help="most traced growth from --from-cycle to the last cycle that is 'flat' "
                             "(default %(default)s)")
    parser.add_argument("--frames", type=int, default=1,
                        help="tracemalloc frames per allocation (more: a slower run, deeper diff)")
    parser.add_argument("--ce", choices=(*CE_KINDS, "both"), default="both",
                        help="which CE kind to run (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: N = 40, 6 cycles, a sample every 2 from cycle 2")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results directory (default benchmarks/results)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fleet and of the VMs that end")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.cycles, args.sample_every, args.from_cycle = 40, 6, 2, 2
    if args.n < len(ce_names()):
        parser.error(f"--n must be at least {len(ce_names())} (one VM per CE)")
    if args.sample_every < 1 or args.cycles < args.sample_every:
        parser.error("--sample-every must be at least 1 and at most --cycles")
    if not 0 <= args.from_cycle < args.cycles or args.from_cycle % args.sample_every:
        parser.error("--from-cycle must be a multiple of --sample-every below --cycles")
    if not 0 < args.ended <= 100:
        parser.error("--ended must be in (0, 100]")
    if args.latency_ms < 0 or args.cycle_gap_s <= 0 or args.flat_mib <= 0 or args.frames < 1:
        parser.error("--latency-ms must not be negative; --cycle-gap-s, --flat-mib, --frames positive")
    return args


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _rss_mib() -> float:
    """Resident memory now (not the peak: ru_maxrss never goes down)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / MIB


# --- worker: one CE kind in its own process ------------------------------------------------------
class Pilots:
    """The live pilots of one CE kind, per CE: reference -> server id (what PilotAgentsDB holds)."""

    def __init__(self, fleet: Fleet, kind: str) -> None:
        self.fleet, self.kind = fleet, kind
        self.by_ce: dict[str, dict[str, str]] = {}
        for name in ce_names():
            refs = fleet.pilot_refs(kind, name)
            self.by_ce[name] = dict(zip(refs, (vm.server_id for vm in fleet.vms[kind][name])))

    def add(self, ce_name: str, refs: list[str]) -> None:
        if self.kind == OURS:
            from JenniferDIRAC.Resources.Cloud.references import parse_reference

            names = {parse_reference(ref)[1]: ref for ref in refs}
            ids = {s.name: s.id for s in list(self.fleet.cloud.compute.servers.values()) if s.name in names}
            if len(ids) != len(refs):
                raise scenarios.MeasurementError(f"submitJob on {ce_name}: {len(ids)} of {len(refs)} VMs found")
            self.by_ce[ce_name].update({ref: ids[name] for name, ref in names.items()})
        else:
            self.by_ce[ce_name].update({ref: ref[len(scenarios.STOCK_REF_PREFIX):] for ref in refs})

    def active(self) -> list[tuple[str, str, str]]:
        servers = self.fleet.cloud.compute.servers
        return [(ce, ref, sid) for ce, pilots in self.by_ce.items() for ref, sid in pilots.items()
                if sid in servers and servers[sid].status == "ACTIVE" and servers[sid].delete_at is None]

    def drop(self, ended: list[tuple[str, str, str]]) -> None:
        for ce, ref, _ in ended:
            self.by_ce[ce].pop(ref, None)

    def count(self) -> int:
        return sum(len(p) for p in self.by_ce.values())


def _end(fleet: Fleet, pilots: Pilots, count: int, rng: random.Random, gap_s: float) -> list:
    """`count` ACTIVE VMs of the kind stop, one after another over the gap between two cycles."""
    active = pilots.active()
    chosen = rng.sample(active, min(count, len(active)))
    for _, _, server_id in chosen:
        fleet.cloud.clock.advance(gap_s / max(1, len(chosen)))
        fleet.cloud.compute.set_state(server_id, "SHUTOFF")
    return chosen


def _delete(fleet: Fleet, ended: list, gone: deque) -> None:
    """The VMs that ended a cycle ago are deleted (the stock CE's cleanupPilots may have done it);
    LocalCloud forgets the servers deleted DELETED_KEPT_CYCLES cycles ago (`gone`: their ids)."""
    compute = fleet.cloud.compute
    for _, _, server_id in ended:
        server = compute.servers.get(server_id)
        if server is not None and server.delete_at is None:
            compute.delete_server(None, server_id)
    compute.finish_deletions()
    gone.append([server_id for _, _, server_id in ended])
    while len(gone) > DELETED_KEPT_CYCLES:
        for server_id in gone.popleft():
            compute.deleted.pop(server_id, None)


def _steady_fleet(fleet: Fleet, kind: str, ces: dict, pilots: Pilots, gap_s: float) -> None:
    """Make the in-process cloud's own memory steady, so that what grows is the CE's: the kind's
    seeded VMs (made behind the CE's back, without user data, addresses...) are replaced by as many
    submitted through the CE (else each VM submitted in a cycle, held by LocalCloud, would replace a
    smaller seeded one: measured ~20 KiB each), and VMs are ACTIVE a cycle after their creation."""
    fleet.cloud.compute.build_seconds = gap_s
    seeded = {name: len(by_ref) for name, by_ref in pilots.by_ce.items()}
    fleet.remove_servers([sid for by_ref in pilots.by_ce.values() for sid in by_ref.values()])
    pilots.by_ce = {name: {} for name in seeded}
    for name, count in seeded.items():
        while len(pilots.by_ce[name]) < count:
            batch = min(SEED_BATCH, count - len(pilots.by_ce[name]))
            submitted = ces[name].submitJob(str(fleet.wrapper), "", batch)
            if not submitted["OK"] or not submitted["Value"]:
                raise scenarios.MeasurementError(f"seeding submitJob failed on {name}: {submitted.get('Message', '')}")
            pilots.add(name, submitted["Value"])
    fleet.cloud.clock.advance(gap_s)


def _cycle(ces: dict, pilots: Pilots, submit_ce: str, count: int, wrapper: str) -> dict:
    """One SiteDirector.execute: available() of each queue, submitJob on one, then per queue in
    threads cleanupPilots and getJobStatus over its live pilots."""
    for name, ce in ces.items():
        result = ce.available()
        if not result["OK"]:
            raise scenarios.MeasurementError(f"available() failed on {name}: {result['Message']}")
    submitted = ces[submit_ce].submitJob(wrapper, "", count)
    if not submitted["OK"]:
        raise scenarios.MeasurementError(f"submitJob failed on {submit_ce}: {submitted['Message']}")
    pilots.add(submit_ce, submitted["Value"])
    refs = {name: list(pilots.by_ce[name]) for name in ces}

    def monitor(name):
        cleaned = ces[name].cleanupPilots()
        result = ces[name].getJobStatus(refs[name])
        if not result["OK"] or set(result["Value"]) != set(refs[name]):
            raise scenarios.MeasurementError(f"getJobStatus failed on {name}: {result.get('Message', '')}")
        return cleaned["OK"]

    with ThreadPoolExecutor(max_workers=len(ces), thread_name_prefix="monitor") as pool:
        cleaned = list(pool.map(monitor, ces))
    return {"cleanup_failures": cleaned.count(False), "not_submitted": count - len(submitted["Value"])}


def _sample(cycle: int, started: float) -> dict:
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    return {"cycle": cycle, "rss_mib": _rss_mib(), "traced_mib": traced / MIB,
            "elapsed_s": time.perf_counter() - started}


def _growth_entries(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> list[dict]:
    ignore = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"))
    # with --frames > 1 the entries are whole tracebacks: who kept what json.loads returned
    group = "traceback" if len(after.traces) and after.traceback_limit > 1 else "lineno"
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), group)
    return [{"where": str(stat.traceback[0]), "traceback": [str(frame) for frame in stat.traceback],
             "size_diff_kib": stat.size_diff / 1024,
             "count_diff": stat.count_diff, "size_kib": stat.size / 1024}
            for stat in stats[:TOP_GROWTH]]


def worker(kind: str, args: argparse.Namespace, workdir: Path) -> dict:
    fleet = start_fleet(args.latency_ms / 1000.0, workdir)
    fleet.cloud.compute.detail_seconds_per_server = 0.0
    rng = random.Random(args.seed + 1)
    per_cycle = max(1, round(args.ended / 100 * args.n))
    samples, failures, not_submitted, snapshots = [], 0, 0, {}
    try:
        ces = {name: fleet.make_ce(kind, name) for name in ce_names()}
        fleet.seed(args.n, args.seed)
        pilots = Pilots(fleet, kind)
        _steady_fleet(fleet, kind, ces, pilots, args.cycle_gap_s)
        tracemalloc.start(args.frames)
        started = time.perf_counter()
        samples.append(_sample(0, started))
        ended: list = []
        gone: deque = deque()
        for cycle in range(1, args.cycles + 1):
            _delete(fleet, ended, gone)
            pilots.drop(ended)
            ended = _end(fleet, pilots, per_cycle, rng, args.cycle_gap_s)
            if kind == OURS:
                scenarios.expire_listings()
            submit_ce = ce_names()[cycle % len(ce_names())]
            outcome = _cycle(ces, pilots, submit_ce, per_cycle, str(fleet.wrapper))
            failures += outcome["cleanup_failures"]
            not_submitted += outcome["not_submitted"]
            if cycle % args.sample_every == 0:
                samples.append(_sample(cycle, started))
                _log(f"{kind}: cycle {cycle}: RSS {samples[-1]['rss_mib']:.1f} MiB, "
                     f"traced {samples[-1]['traced_mib']:.2f} MiB")
                if cycle in (args.from_cycle, args.cycles):
                    snapshots[cycle] = tracemalloc.take_snapshot()
        growth = _growth_entries(snapshots[args.from_cycle], snapshots[args.cycles]) \
            if args.from_cycle in snapshots else []
        tracemalloc.stop()
        for ce in ces.values():
            if hasattr(ce, "shutdown"):
                ce.shutdown()
        live = pilots.count()
    finally:
        fleet.cloud.stop()
        shutil.rmtree(fleet.workdir, ignore_errors=True)
    return {"ce": kind, "samples": samples, "growth_top": growth, "ended_per_cycle": per_cycle,
            "cleanup_failures": failures, "not_submitted": not_submitted, "live_pilots_at_end": live,
            "verdict": verdict(samples, args.from_cycle, args.cycles, args.flat_mib)}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def verdict(samples: list[dict], first: int, last: int, flat_mib: float) -> dict:
    """Growth of traced memory and RSS from cycle `first` to `last`: the least-squares slope over
    the samples in between (one noisy sample does not decide), per 100 cycles and over the span."""
    judged = [s for s in samples if first <= s["cycle"] <= last]
    span = last - first
    result = {"from_cycle": first, "to_cycle": last, "flat_mib": flat_mib}
    for key in ("traced_mib", "rss_mib"):
        per_cycle = slope([(s["cycle"], s[key]) for s in judged])
        result[key.replace("_mib", "")] = {
            "slope_mib_per_100_cycles": per_cycle * 100, "growth_mib": per_cycle * span,
            "endpoints_diff_mib": judged[-1][key] - judged[0][key]}
    result["flat"] = result["traced"]["growth_mib"] < flat_mib
    return result


def _worker_main(args: argparse.Namespace) -> int:
    kind, output = args.worker[0], Path(args.worker[1])
    from DIRAC import gLogger

    gLogger.setLevel("ERROR")
    logging.getLogger("openstack").setLevel(logging.ERROR)
    workdir = output.parent / f"{kind}-work"
    workdir.mkdir()
    output.write_text(json.dumps(worker(kind, args, workdir)))
    return 0


# --- parent ----------------------------------------------------------------------------------------
def _worker_argv(args: argparse.Namespace, kind: str, output: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(output),
            "--n", str(args.n), "--cycles", str(args.cycles), "--sample-every", str(args.sample_every),
            "--from-cycle", str(args.from_cycle), "--ended", str(args.ended),
            "--cycle-gap-s", str(args.cycle_gap_s), "--latency-ms", str(args.latency_ms),
            "--flat-mib", str(args.flat_mib), "--frames", str(args.frames), "--seed", str(args.seed)]


def run(args: argparse.Namespace) -> dict:
    kinds = CE_KINDS if args.ce == "both" else (args.ce,)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ce-memory-") as tmp:
        for kind in kinds:
            output = Path(tmp) / f"{kind}.json"
            _log(f"{kind}: worker process, N={args.n}, {args.cycles} cycles")
            completed = subprocess.run(_worker_argv(args, kind, output), cwd=REPO, stdout=subprocess.PIPE,
                                       text=True, timeout=WORKER_TIMEOUT_S)
            if completed.returncode != 0 or not output.exists():
                sys.stderr.write(completed.stdout[-4000:])
                raise RuntimeError(f"the worker for {kind} failed (exit {completed.returncode})")
            runs.append(json.loads(output.read_text()))
    return {
        "schema": 1,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "settings": {"n": args.n, "cycles": args.cycles, "sample_every": args.sample_every,
                     "from_cycle": args.from_cycle, "ended_percent": args.ended,
                     "cycle_gap_s": args.cycle_gap_s, "latency_ms": args.latency_ms,
                     "flat_mib": args.flat_mib, "frames": args.frames, "quick": args.quick,
                     "ces": ce_names(), "seed": args.seed},
        "environment": _environment(),
        "runs": runs,
        "targets": [{"target": f"{r['ce']} CE: memory flat over {args.cycles} cycles",
                     "measured": r["verdict"]["traced"]["growth_mib"], "limit": args.flat_mib,
                     "unit": f"MiB traced growth, cycle {args.from_cycle} to {args.cycles}",
                     "met": r["verdict"]["flat"]} for r in runs],
        "notes": [
            "one worker process per CE kind; LocalCloud runs in that process (2N VMs), so its "
            "memory is part of the figures: flat figures mean flat CE and cloud together",
            "traced: tracemalloc's traced memory after gc.collect(); RSS: /proc/self/statm now, "
            "reported, not judged (the allocator keeps freed pages, tracemalloc's own tables grow)",
            f"flat: least-squares slope of traced memory over the samples from cycle {args.from_cycle} "
            f"to {args.cycles}, times the cycles between them, under {args.flat_mib:g} MiB",
            "each cycle: --ended % of the kind's ACTIVE VMs stop over --cycle-gap-s of the cloud's "
            "clock, those stopped a cycle before are deleted, as many are submitted on one CE, "
            "then available(), cleanupPilots and getJobStatus of every CE (4 threads)",
            "our CE ran without VMDB or PilotAgentsDB; our CEs' shared listing is expired before "
            "every cycle (cycles are minutes apart; the incremental view is kept)",
        ],
    }


def _environment() -> dict:
    from importlib.metadata import version

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": len(os.sched_getaffinity(0)), "git_commit": commit,
            **{name: version(name) for name in ("DIRAC", "apache-libcloud", "openstacksdk")}}


def table(doc: dict) -> str:
    runs = doc["runs"]
    header = "cycle" + "".join(f"  {r['ce'] + ' RSS MiB':>14}  {r['ce'] + ' traced MiB':>17}" for r in runs)
    lines = [header]
    for index, sample in enumerate(runs[0]["samples"]):
        row = f"{sample['cycle']:>5}"
        for r in runs:
            s = r["samples"][index]
            row += f"  {s['rss_mib']:>14.1f}  {s['traced_mib']:>17.2f}"
        lines.append(row)
    settings = doc["settings"]
    for r in runs:
        v = r["verdict"]
        lines.append(
            f"{r['ce']}: cycle {v['from_cycle']} -> {v['to_cycle']}: traced "
            f"{v['traced']['slope_mib_per_100_cycles']:+.3f} MiB/100 cycles ({v['traced']['growth_mib']:+.3f} MiB "
            f"over {v['to_cycle'] - v['from_cycle']}; samples {v['traced']['endpoints_diff_mib']:+.3f}), RSS "
            f"{v['rss']['slope_mib_per_100_cycles']:+.2f} MiB/100 cycles -> "
            f"{'PASS' if v['flat'] else 'FAIL'} (flat: < {settings['flat_mib']:g} MiB traced)")
        for entry in r["growth_top"][:5]:
            lines.append(f"    {entry['size_diff_kib']:+9.1f} KiB {entry['count_diff']:+6d} blocks  {entry['where']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.worker:
        return _worker_main(args)
    doc = run(args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}-ce-memory.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(doc))
    print("\n".join(f"note: {note}" for note in doc["notes"]))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
