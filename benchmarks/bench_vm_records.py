"""CPU of the VMDirector's per-cycle VM-row read (Director/vmrecords.py ``vm_records``) for one CE
in steady state, on a private MariaDB: reading every wanted row each cycle (the read before
VMs.Changed: getVMRows, live and unaccounted, with KeptRecords reusing unchanged records)
against reading the rows changed since the last read (getVMChanges, merged into the kept rows,
checked by count and change stamps sum; a full read every FULL_READ_EVERY reads), side by side in one run.

The database holds --ces CEs of --live live VMs each (every column filled as a running VM's),
plus --history deleted and accounted rows per CE (retention keeps them); each cycle changes
--changed of each CE's live VMs (a third new VMs, a third state changes or heartbeats, a third
deleted and accounted the cycle after). Both reads run on the same database after the same
changes, in alternating order. CPU is this process's (time.process_time: the client's query,
MySQLdb's conversions and the records), the server's is not counted. The incremental read asks
for changes since the last read's time with no margin (cycles here are milliseconds apart; the
agent's 10 s margin re-reads the changes of the 10 s before its last read as well). ::

    nice -n 10 .venv/bin/python benchmarks/bench_vm_records.py              # 4 CEs x 1,250, 1 %
    nice -n 10 .venv/bin/python benchmarks/bench_vm_records.py --cycles 120 --json out.json
    nice -n 10 .venv/bin/python benchmarks/bench_vm_records.py --heartbeats 500   # endpoint heartbeats
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

UTC = dt.timezone.utc


class AllRowsClient:
    """The client the read had before getVMChanges: getVMRows only (vm_records reads every row)."""

    def __init__(self, client, rows_read: list):
        self._client, self._rows_read = client, rows_read

    def getVMRows(self, **query):
        result = self._client.getVMRows(**query)
        self._rows_read.append(len(result["Value"]) if result["OK"] else 0)
        return result


def vm_row(name: str, ce: str, created: dt.datetime, i: int) -> dict:
    return {"vm_name": name, "vm_id": f"{i:08x}-0000-4000-8000-{i:012x}", "ce": ce, "site": "CLOUD.Bench.uk",
            "vo": "belle", "profile": "default", "pilot_reference": f"cloud://{ce}/{name}", "stamp": f"{i:032x}",
            "flavor": "m1.large", "cores": 4, "ram_mb": 8192, "created": created}


def fill(db, ces: list[str], live: int, history: int, t0: dt.datetime) -> dict[str, list[str]]:
    """Every CE's live VMs running (started, heartbeat, state time) and its history rows."""
    names = {}
    for c, ce in enumerate(ces):
        ce_names = [f"jdirac-{c:02x}{i:030x}" for i in range(live + history)]
        rows = [vm_row(name, ce, t0 - dt.timedelta(minutes=i), c * 100000 + i) for i, name in enumerate(ce_names)]
        assert db.recordVMs(rows)["OK"]
        assert db.setVMStates({n: {"state": "ACTIVE", "started": t0 - dt.timedelta(minutes=i - 2)}
                               for i, n in enumerate(ce_names)}, t0)["OK"]
        assert db.addHeartbeats([(n, t0, "0.9 0.8 0.7") for n in ce_names])["OK"]
        old = ce_names[live:]
        assert db.markVMsDeleted(old, "pilot done", when=t0 - dt.timedelta(days=1))["OK"]
        assert db.markAccounted(old, t0 - dt.timedelta(days=1))["OK"]
        names[ce] = ce_names[:live]
    return names


def change(db, ce: str, names: list[str], changed: int, cycle: int, t: dt.datetime, rng, pending: list,
           heartbeats: int = 0) -> None:
    """One cycle's changes of a CE: new VMs, state changes and heartbeats, deletions (accounted
    the next cycle, as the VMDirector does)."""
    if pending:
        assert db.markAccounted(pending, t)["OK"]
        pending.clear()
    third = max(1, changed // 3)
    new = [f"jdirac-{ce[:2]}{cycle:06x}{k:024x}" for k in range(third)]
    assert db.recordVMs([vm_row(name, ce, t, cycle * 1000 + k) for k, name in enumerate(new)])["OK"]
    touched = rng.sample(names, third)
    assert db.setVMStates({n: "SHUTOFF" for n in touched[: third // 2 + 1]}, t)["OK"]
    assert db.addHeartbeats([(n, t, f"0.{cycle % 10} 0.5 0.5") for n in touched[third // 2 + 1:]])["OK"]
    gone = rng.sample(names, third)
    assert db.markVMsDeleted(gone, "pilot done", when=t)["OK"]
    pending.extend(gone)
    if heartbeats:  # VMs reporting through the VM endpoint: each heartbeat moves LastHeartbeat
        assert db.addHeartbeats([(n, t, "0.5 0.5 0.5") for n in rng.sample(names, heartbeats)])["OK"]
    gone_set = set(gone)
    names[:] = [n for n in names if n not in gone_set] + new


def measure(fn) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ces", type=int, default=4)
    parser.add_argument("--live", type=int, default=1250, help="live VMs per CE")
    parser.add_argument("--history", type=int, default=1250, help="deleted, accounted rows per CE")
    parser.add_argument("--changed", type=int, default=12, help="live VMs changed per CE and cycle (1 %%)")
    parser.add_argument("--heartbeats", type=int, default=0,
                        help="live VMs per CE whose heartbeat is written each cycle besides (HeartbeatSeconds 300 "
                             "and PollingTime 120: 500 of 1,250)")
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    from benchmarks.benchdb import private_vmdb

    with private_vmdb("benchvmrec", "VMDB_bench_rec"):
        from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
        from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB
        from JenniferDIRAC.WorkloadManagementSystem.Director import vmrecords
        from JenniferDIRAC.WorkloadManagementSystem.Director.vmrecords import KeptRecords, vm_records

        vmrecords.CHANGE_MARGIN = dt.timedelta(0)
        db = VMDB()
        client = VMStateClient(mode="db")
        ces = [f"ce{c}.bench.example" for c in range(args.ces)]
        t0 = dt.datetime.now(UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=1)
        names = fill(db, ces, args.live, args.history, t0)
        rng = random.Random(17)
        ce = ces[0]
        rows_read = []
        reads = {"every row (before)": (AllRowsClient(client, rows_read), KeptRecords()),
                 "changed rows (after)": (client, KeptRecords())}
        figures = {kind: {"cpu": [], "wall": [], "rows": []} for kind in reads}
        pending = {c: [] for c in ces}
        original = client.getVMChanges

        def counting(ce, since=None):
            result = original(ce, since)
            rows_read.append(len(result["Value"]["rows"]) if result["OK"] else 0)
            return result

        client.getVMChanges = counting
        for kind, (reader, kept) in reads.items():  # the first (full) reads, not counted
            vm_records(reader, ce, kept)
        for cycle in range(args.cycles):
            t = t0 + dt.timedelta(seconds=60 * (cycle + 1))
            for c in ces:
                change(db, c, names[c], args.changed, cycle, t, rng, pending[c], args.heartbeats)
            order = list(reads) if cycle % 2 == 0 else list(reversed(reads))
            answers = {}
            for kind in order:
                reader, kept = reads[kind]
                rows_read.clear()
                cpu, wall, answers[kind] = measure(lambda: vm_records(reader, ce, kept))
                figures[kind]["cpu"].append(cpu)
                figures[kind]["wall"].append(wall)
                figures[kind]["rows"].append(sum(rows_read))
            before, after = answers.values()
            assert list(before.items()) == list(after.items()), f"cycle {cycle}: the reads differ"
    print(f"vm_records for one CE: {args.live} live VMs (+{args.history} deleted, accounted), {args.ces} CEs in "
          f"VMDB, {args.changed} changed + {args.heartbeats} heartbeats per CE and cycle, {args.cycles} cycles; "
          f"full read every {vmrecords.FULL_READ_EVERY} reads of the new path (in the mean)")
    print(f"{'read':24} {'CPU median ms':>14} {'CPU mean ms':>12} {'CPU p95 ms':>11} {'wall median ms':>15} "
          f"{'rows read':>10}")
    table = {}
    for kind, fig in figures.items():
        cpu = sorted(fig["cpu"])
        row = {"cpu_median_ms": 1000 * statistics.median(cpu), "cpu_mean_ms": 1000 * statistics.fmean(cpu),
               "cpu_p95_ms": 1000 * cpu[int(0.95 * (len(cpu) - 1))],
               "wall_median_ms": 1000 * statistics.median(fig["wall"]),
               "rows_median": statistics.median(fig["rows"])}
        table[kind] = row
        print(f"{kind:24} {row['cpu_median_ms']:14.2f} {row['cpu_mean_ms']:12.2f} {row['cpu_p95_ms']:11.2f} "
              f"{row['wall_median_ms']:15.2f} {row['rows_median']:10.0f}")
    b, a = (table[k]["cpu_median_ms"] for k in reads)
    print(f"CPU median: {b / a:.1f}x less")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "figures": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
