"""Memory of a CE process over many SiteDirector cycles: JenniferDIRAC's CE and DIRAC's stock CloudCE.

For each CE kind a worker process (the CE process) starts LocalCloud in a process of its own, as
a site's cloud is (benchmarks/cebench/cloudprocess.py), which seeds N VMs of each kind over 4 CEs
in one project (benchmarks/cebench, as bench_ce.py); the worker keeps the 4 CE objects as a
SiteDirector does and runs ``--cycles`` SiteDirector cycles: ``--ended`` % of the kind's VMs end
(SHUTOFF) over the gap between two cycles and the ones ended in the cycle before are deleted (as
the VMDirector, or the stock CE's own cleanupPilots, does); then ``available()`` of each CE,
``submitJob`` of as many VMs as ended on one CE (in turn), and per CE in threads
``cleanupPilots`` then ``getJobStatus`` over its live pilots. So the fleet stays at N VMs while
its VMs change.

tracemalloc traces the CE process from before its CE objects are built (what they hold from the
first cycle on is traced: a VM's state replaced later is not counted as growth). Every
``--sample-every`` cycles (after ``gc.collect()``) it records the CE process's resident memory
(/proc/<pid>/statm), the memory tracemalloc traces, and the cloud process's resident memory
(reported, not judged), and judges the growth from ``--from-cycle`` to the last cycle: the
least-squares slope of traced memory over those samples times the cycles between them must stay
under ``--flat-mib``. The tracemalloc snapshot diff between those two cycles (top entries) says
what grew. At a site the CE and the cloud read one clock; here the cloud's runs ``--cycle-gap-s``
ahead per cycle: our CE's own clock (``CloudComputingElement.clock``: what it remembers for
LostPilotGrace) is set to the cloud's, and the cloud's tokens last the run's cloud time plus an
hour, as libcloud and keystoneauth judge a token's expiry by the real clock.
Prints a table, writes JSON to ``benchmarks/results/<UTC timestamp>-ce-memory.json``::

    .venv/bin/python benchmarks/bench_ce_memory.py                    # N = 1000, 200 cycles, both CEs
    .venv/bin/python benchmarks/bench_ce_memory.py --ce ours --n 5000
    .venv/bin/python benchmarks/bench_ce_memory.py --quick            # smoke test, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import signal
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
from benchmarks.cebench.cloudprocess import CloudProcess  # noqa: E402
from benchmarks.cebench.fleet import CE_KINDS, OURS, ce_class, ce_names, make_ce, shutdown_ces  # noqa: E402
from benchmarks.cebench.workers import environment, log, quiet_ce_logging, run_worker  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
WORKER_TIMEOUT_S = 3600
TOP_GROWTH = 10
SEED_BATCH = 100  # VMs per submitJob when the fleet is built through the CE
#: Deleted servers stay listed (changes-since) this many cycles, then LocalCloud forgets them, as
#: Nova's archiving does; otherwise the cloud would grow by itself.
DELETED_KEPT_CYCLES = 3
#: Tokens outlive the run's cloud time by this much (seconds).
TOKEN_MARGIN_S = 3600.0


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
    parser.add_argument("--trace-cloud", action="store_true",
                        help="tracemalloc in the cloud process too: its traced memory is reported "
                             "(slower cloud; tells the cloud's own growth from its allocator's)")
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


def _rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process now (not the peak: ru_maxrss never goes down)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / MIB


def token_ttl(args: argparse.Namespace) -> float:
    """The cloud time the run covers (the set-up's gap and every cycle's) and TOKEN_MARGIN_S."""
    return (args.cycles + 1) * args.cycle_gap_s + TOKEN_MARGIN_S


# --- worker: one CE kind in its own process ------------------------------------------------------
class Pilots:
    """The live pilots of one CE kind, per CE: reference -> server id (what PilotAgentsDB holds)."""

    def __init__(self, cloud: CloudProcess, kind: str) -> None:
        self.cloud, self.kind = cloud, kind
        self.by_ce: dict[str, dict[str, str]] = {name: {} for name in ce_names()}

    def add(self, ce_name: str, refs: list[str]) -> None:
        if self.kind == OURS:
            from JenniferDIRAC.Resources.Cloud.references import parse_reference

            names = {parse_reference(ref)[1]: ref for ref in refs}
            ids = self.cloud.call("ids_named", list(names))
            if len(ids) != len(refs):
                raise scenarios.MeasurementError(f"submitJob on {ce_name}: {len(ids)} of {len(refs)} VMs found")
            self.by_ce[ce_name].update({ref: ids[name] for name, ref in names.items()})
        else:
            self.by_ce[ce_name].update({ref: ref[len(scenarios.STOCK_REF_PREFIX):] for ref in refs})

    def active(self) -> list[tuple[str, str, str]]:
        pilots = [(ce, ref, sid) for ce, by_ref in self.by_ce.items() for ref, sid in by_ref.items()]
        active = set(self.cloud.call("active", [sid for _, _, sid in pilots]))
        return [pilot for pilot in pilots if pilot[2] in active]

    def drop(self, ended: list[tuple[str, str, str]]) -> None:
        for ce, ref, _ in ended:
            self.by_ce[ce].pop(ref, None)

    def count(self) -> int:
        return sum(len(p) for p in self.by_ce.values())


def _end(cloud: CloudProcess, pilots: Pilots, count: int, rng: random.Random, gap_s: float) -> list:
    """`count` ACTIVE VMs of the kind stop, one after another over the gap between two cycles."""
    active = pilots.active()
    chosen = rng.sample(active, min(count, len(active)))
    cloud.clock_offset_s = cloud.call("power_off", [server_id for _, _, server_id in chosen], gap_s)
    return chosen


def _delete(cloud: CloudProcess, ended: list, gone: deque) -> None:
    """The VMs that ended a cycle ago are deleted (the stock CE's cleanupPilots may have done it);
    LocalCloud forgets the servers deleted DELETED_KEPT_CYCLES cycles ago (`gone`: their ids)."""
    gone.append([server_id for _, _, server_id in ended])
    forget: list[str] = []
    while len(gone) > DELETED_KEPT_CYCLES:
        forget += gone.popleft()
    cloud.call("delete", gone[-1], forget)


def _steady_fleet(cloud: CloudProcess, ces: dict, pilots: Pilots, seeded: dict[str, list[str]],
                  gap_s: float) -> None:
    """Make the cloud's fleet steady: the kind's seeded VMs (made behind the CE's back, without
    user data, addresses...) are replaced by as many submitted through the CE (else each VM
    submitted in a cycle would replace a smaller seeded one in the CE's listings, and the
    cloud's), and VMs are ACTIVE a cycle after their creation."""
    cloud.call("configure", gap_s, None)
    cloud.call("remove_servers", [sid for ids in seeded.values() for sid in ids])
    for name, ids in seeded.items():
        while len(pilots.by_ce[name]) < len(ids):
            batch = min(SEED_BATCH, len(ids) - len(pilots.by_ce[name]))
            submitted = ces[name].submitJob(str(cloud.wrapper), "", batch)
            if not submitted["OK"] or not submitted["Value"]:
                raise scenarios.MeasurementError(f"seeding submitJob failed on {name}: {submitted.get('Message', '')}")
            pilots.add(name, submitted["Value"])
    cloud.clock_offset_s = cloud.call("advance", gap_s)


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


class Sampler:
    """The memory samples of one run: after gc.collect(), this (the CE) process's RSS and traced
    memory and the cloud process's RSS; a tracemalloc snapshot at the cycles judged between,
    kept in a file (held in memory, it would be most of the RSS growth it is meant to explain)."""

    def __init__(self, kind: str, cloud: CloudProcess, snapshot_cycles: tuple[int, int],
                 workdir: Path) -> None:
        self.kind, self.cloud, self.snapshot_cycles = kind, cloud, snapshot_cycles
        self.samples: list[dict] = []
        self.snapshots: dict[int, Path] = {}
        self.workdir = workdir
        self.started = time.perf_counter()

    def take(self, cycle: int) -> None:
        gc.collect()
        traced, _ = tracemalloc.get_traced_memory()
        sample = {"cycle": cycle, "rss_mib": _rss_mib(), "traced_mib": traced / MIB,
                  "cloud_rss_mib": _rss_mib(self.cloud.process.pid),
                  "cloud_traced_mib": self.cloud.call("traced_mib"),
                  "elapsed_s": time.perf_counter() - self.started}
        self.samples.append(sample)
        if cycle in self.snapshot_cycles:
            self.snapshots[cycle] = self.workdir / f"snapshot-{cycle}.tracemalloc"
            tracemalloc.take_snapshot().dump(str(self.snapshots[cycle]))
        cloud_traced = sample["cloud_traced_mib"]
        log(f"{self.kind}: cycle {cycle}: RSS {sample['rss_mib']:.1f} MiB, traced "
            f"{sample['traced_mib']:.2f} MiB, cloud RSS {sample['cloud_rss_mib']:.1f} MiB"
            + (f", cloud traced {cloud_traced:.2f} MiB" if cloud_traced is not None else ""))

    def growth(self) -> list[dict]:
        """What grew between the two snapshots (none if a snapshot was not taken)."""
        first, last = self.snapshot_cycles
        if first not in self.snapshots or last not in self.snapshots:
            return []
        load = tracemalloc.Snapshot.load
        return _growth_entries(load(str(self.snapshots[first])), load(str(self.snapshots[last])))


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
    cloud = CloudProcess(args.latency_ms / 1000.0, workdir, token_ttl(args), trace=args.trace_cloud)
    rng = random.Random(args.seed + 1)
    per_cycle = max(1, round(args.ended / 100 * args.n))
    failures = not_submitted = 0
    try:
        cloud.call("configure", None, 0.0)
        ce_class(kind)  # its modules imported before: code, not the CE's state
        # traced from here: the CE objects and all they come to hold (an allocation made before,
        # freed later, would make what replaces it look like growth)
        tracemalloc.start(args.frames)
        ces = {name: make_ce(kind, name, cloud.ce_parameters(kind, name)) for name in ce_names()}
        if kind == OURS:  # its clock (what it remembers for LostPilotGrace) runs with the cloud's
            for ce in ces.values():
                ce.clock = cloud.utcnow
        seeded = cloud.call("seed", args.n, args.seed)[kind]
        pilots = Pilots(cloud, kind)
        _steady_fleet(cloud, ces, pilots, seeded, args.cycle_gap_s)
        sampler = Sampler(kind, cloud, (args.from_cycle, args.cycles), workdir)
        sampler.take(0)
        ended: list = []
        gone: deque = deque()
        for cycle in range(1, args.cycles + 1):
            _delete(cloud, ended, gone)
            pilots.drop(ended)
            ended = _end(cloud, pilots, per_cycle, rng, args.cycle_gap_s)
            if kind == OURS:
                scenarios.expire_listings()
            submit_ce = ce_names()[cycle % len(ce_names())]
            outcome = _cycle(ces, pilots, submit_ce, per_cycle, str(cloud.wrapper))
            failures += outcome["cleanup_failures"]
            not_submitted += outcome["not_submitted"]
            if cycle % args.sample_every == 0:
                sampler.take(cycle)
        growth = sampler.growth()
        tracemalloc.stop()
        shutdown_ces(ces)
        live = pilots.count()
    finally:
        cloud.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"ce": kind, "samples": sampler.samples, "growth_top": growth, "ended_per_cycle": per_cycle,
            "cleanup_failures": failures, "not_submitted": not_submitted, "live_pilots_at_end": live,
            "verdict": verdict(sampler.samples, args.from_cycle, args.cycles, args.flat_mib)}


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
    quiet_ce_logging()
    workdir = output.parent / f"{kind}-work"  # under the parent's temporary directory
    workdir.mkdir()
    output.write_text(json.dumps(worker(kind, args, workdir)))
    return 0


# --- parent ----------------------------------------------------------------------------------------
def _worker_argv(args: argparse.Namespace, kind: str, output: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(output),
            "--n", str(args.n), "--cycles", str(args.cycles), "--sample-every", str(args.sample_every),
            "--from-cycle", str(args.from_cycle), "--ended", str(args.ended),
            "--cycle-gap-s", str(args.cycle_gap_s), "--latency-ms", str(args.latency_ms),
            "--flat-mib", str(args.flat_mib), "--frames", str(args.frames), "--seed", str(args.seed),
            *(["--trace-cloud"] if args.trace_cloud else [])]


def run(args: argparse.Namespace) -> dict:
    kinds = CE_KINDS if args.ce == "both" else (args.ce,)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ce-memory-") as tmp:
        for kind in kinds:
            output = Path(tmp) / f"{kind}.json"
            log(f"{kind}: worker process, N={args.n}, {args.cycles} cycles")
            runs.append(run_worker(_worker_argv(args, kind, output), output, kind, WORKER_TIMEOUT_S))
    return {
        "schema": 2,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "settings": {"n": args.n, "cycles": args.cycles, "sample_every": args.sample_every,
                     "from_cycle": args.from_cycle, "ended_percent": args.ended,
                     "cycle_gap_s": args.cycle_gap_s, "latency_ms": args.latency_ms,
                     "flat_mib": args.flat_mib, "frames": args.frames, "quick": args.quick,
                     "trace_cloud": args.trace_cloud,
                     "token_ttl_s": token_ttl(args), "ces": ce_names(), "seed": args.seed},
        "environment": environment(),
        "runs": runs,
        "targets": [{"target": f"{r['ce']} CE: memory flat over {args.cycles} cycles",
                     "measured": r["verdict"]["traced"]["growth_mib"], "limit": args.flat_mib,
                     "unit": f"MiB traced growth, cycle {args.from_cycle} to {args.cycles}",
                     "met": r["verdict"]["flat"]} for r in runs],
        "notes": [
            "one worker process (the CE process) per CE kind; LocalCloud (2N VMs) runs in a process "
            "of its own, as a site's cloud does: the figures are the CE process's; cloud RSS is the "
            "cloud process's, reported, not judged",
            "traced: tracemalloc's traced memory after gc.collect(), traced from before the CE "
            "objects were built; RSS: /proc/<pid>/statm now, reported, not judged (the allocator "
            "keeps freed pages, tracemalloc's own tables grow)",
            f"flat: least-squares slope of traced memory over the samples from cycle {args.from_cycle} "
            f"to {args.cycles}, times the cycles between them, under {args.flat_mib:g} MiB",
            "each cycle: --ended % of the kind's ACTIVE VMs stop over --cycle-gap-s of the cloud's "
            "clock, those stopped a cycle before are deleted, as many are submitted on one CE, "
            "then available(), cleanupPilots and getJobStatus of every CE (4 threads)",
            "at a site the CE and the cloud read one clock; here the cloud's runs --cycle-gap-s ahead "
            "per cycle: our CE's clock (CloudComputingElement.clock) is set to the cloud's, and the "
            f"cloud's tokens last {token_ttl(args):g} s (the run's cloud time and an hour) as libcloud "
            "(stock) and keystoneauth (ours) judge a token's expiry by the real clock",
            "our CE ran without VMDB or PilotAgentsDB; our CEs' shared listing is expired before "
            "every cycle (cycles are minutes apart; the incremental view is kept)",
        ],
    }


def table(doc: dict) -> str:
    runs = doc["runs"]
    header = "cycle" + "".join(
        f"  {r['ce'] + ' RSS MiB':>14}  {r['ce'] + ' traced MiB':>17}  {'cloud RSS MiB':>13}" for r in runs)
    lines = [header]
    for index, sample in enumerate(runs[0]["samples"]):
        row = f"{sample['cycle']:>5}"
        for r in runs:
            s = r["samples"][index]
            row += f"  {s['rss_mib']:>14.1f}  {s['traced_mib']:>17.2f}  {s['cloud_rss_mib']:>13.1f}"
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
