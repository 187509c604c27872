"""VMDB size after a simulated year of cloud VMs: with the VMDBRetentionAgent's rules, and without.

Starts a throwaway mariadbd (dev/mariadb.py) with two VMDBs (created by the VMDB class). Day by
day, both get the same VMs (bulk INSERTs): each VM lives ``--hours`` hours, sends a heartbeat
every ``--heartbeat-minutes`` minutes, uploads a boot and a pilot log, is deleted and accounted.
At the end of each simulated day the retention rules (DB/VMDBRetention.py, the agent's code) run
on one of the two databases with that day as "now". Then both are measured: rows per table and
InnoDB's data + index length (information_schema, after ANALYZE TABLE)::

    .venv/bin/python benchmarks/bench_vmdb_retention.py        # 365 days x 5,000 VMs/day, at 1:500 (~5 min)
    .venv/bin/python benchmarks/bench_vmdb_retention.py --scale 1   # every VM (hours, ~100 GB)

At ``--scale`` s, s x ``--vms-per-day`` VMs a day are simulated and every figure is multiplied by
1/s (sizes grow linearly with the number of VMs). Logs are ``--log-bytes`` per VM (real ones are
often larger, up to the endpoint's MaxBytesPerVM): without retention their share grows in
proportion, with it only LogRetentionDays of them are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T0 = dt.datetime(2027, 1, 1)
TABLES = ("VMs", "VMLogs", "VMHeartbeats", "VMBackoff")
VM_INSERT = (
    "INSERT INTO VMs (`VMName`, `VMID`, `CE`, `Site`, `VO`, `Profile`, `PilotReference`, `Stamp`, `Flavor`, "
    "`Cores`, `RAMMB`, `Created`, `Started`, `Ended`, `CloudState`, `CloudStateTime`, `Deleted`, `DeleteReason`, "
    "`LastHeartbeat`, `HeartbeatLoad`, `ShutdownCode`, `ShutdownMessage`, `Accounted`, `AccountedTime`) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
LOG_INSERT = ("INSERT INTO VMLogs (`VMName`, `Kind`, `Content`, `OriginalSize`, `Updated`) "
              "VALUES (%s, %s, %s, %s, %s)")
BEAT_INSERT = "INSERT INTO VMHeartbeats (`VMName`, `HeartbeatTime`, `HeartbeatLoad`) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Workload:
    days: int = 365
    vms_per_day: int = 5000
    scale: float = 0.002
    hours: float = 12.0
    heartbeat_minutes: float = 10.0
    log_bytes: int = 4096

    @property
    def simulated_per_day(self) -> int:
        return max(1, round(self.vms_per_day * self.scale))


@dataclass
class Measure:
    rows: dict[str, int]
    bytes: int


def day_rows(workload: Workload, day: int):
    """The VM, log and heartbeat rows of the VMs created on ``day``."""
    vms, logs, beats = [], [], []
    ce = "cloud.bench.example"
    beats_per_vm = int(workload.hours * 60 // workload.heartbeat_minutes)
    boot, pilot = workload.log_bytes // 4, workload.log_bytes - workload.log_bytes // 4
    for i in range(workload.simulated_per_day):
        name = f"jdirac-{day:05d}{i:027x}"
        created = T0 + dt.timedelta(days=day, seconds=i * 86400 // workload.simulated_per_day)
        ended = created + dt.timedelta(hours=workload.hours)
        deleted = ended + dt.timedelta(minutes=5)
        vms.append((name, f"id-{name[7:]}", ce, "CLOUD.Bench.example", "vo", "default",
                    f"cloud://{ce}/{name}", f"{day:05d}{i:027x}", "m1.large", 4, 8192, created,
                    created + dt.timedelta(minutes=2), ended, "SHUTOFF", ended, deleted, "pilot done",
                    ended, "0.50 0.40 0.30 1/200 4242", 200, "Intended work completed ok", 1, deleted))
        # Pseudo-random text compresses like a log but is not all zeros.
        for kind, size in (("boot", boot), ("pilot", pilot)):
            content = (f"{name} {kind} line ".encode() * (size // 40 + 1))[:size]
            logs.append((name, kind, content, size, ended))
        for k in range(beats_per_vm):
            beats.append((name, created + dt.timedelta(minutes=workload.heartbeat_minutes * (k + 1)),
                          "0.50 0.40 0.30 1/200 4242"))
    return vms, logs, beats


def insert_day(conn, rows) -> None:
    vms, logs, beats = rows
    cursor = conn.cursor()
    cursor.executemany(VM_INSERT, vms)
    cursor.executemany(LOG_INSERT, logs)
    for start in range(0, len(beats), 5000):
        cursor.executemany(BEAT_INSERT, beats[start : start + 5000])
    conn.commit()


def measure(conn, database: str) -> Measure:
    cursor = conn.cursor()
    rows = {}
    for table in TABLES:
        cursor.execute(f"ANALYZE TABLE `{database}`.`{table}`")
        cursor.fetchall()
        cursor.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
        rows[table] = int(cursor.fetchone()[0])
    cursor.execute(
        "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (database,),
    )
    return Measure(rows, int(cursor.fetchone()[0] or 0))


def simulate(server, workload: Workload, policy, quiet: bool = False, fast_flush: bool = True) -> dict:
    """Both databases through ``workload``; {"without": Measure, "with": Measure, "retention_seconds": [..]}."""
    from DIRAC import gLogger

    from benchmarks.benchdb import use_vmdb
    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBRetention import apply_retention

    gLogger.setLevel("ERROR")
    if fast_flush:  # sizes do not depend on how often the redo log is flushed; the run time does
        server.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
    names = {"without": f"VMDB_noretention_{os.getpid()}", "with": f"VMDB_retention_{os.getpid()}"}
    dbs = {}
    for key, name in names.items():
        use_vmdb(server, name)
        from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

        dbs[key] = VMDB()
    connections = {key: server.connect(name) for key, name in names.items()}
    retention_seconds = []
    compacted_until = None
    try:
        for day in range(workload.days):
            rows = day_rows(workload, day)
            for conn in connections.values():
                insert_day(conn, rows)
            started = time.perf_counter()
            result = apply_retention(dbs["with"], policy, T0 + dt.timedelta(days=day + 1), compacted_until)
            retention_seconds.append(time.perf_counter() - started)
            if not result["OK"]:
                raise RuntimeError(result["Message"])
            compacted_until = result["Value"]["compacted_until"]
            if not quiet and (day + 1) % 30 == 0:
                print(f"  day {day + 1}/{workload.days}", file=sys.stderr, flush=True)
        results = {key: measure(conn, names[key]) for key, conn in connections.items()}
    finally:
        for conn in connections.values():
            conn.close()
        for name in names.values():
            server.drop_database(name)
    results["retention_seconds"] = retention_seconds
    return results


def _mb(value: float) -> str:
    return f"{value / 1e6:12,.1f}"


def report(workload: Workload, policy, results: dict) -> str:
    factor = 1 / workload.scale if workload.simulated_per_day != workload.vms_per_day else 1.0
    lines = [
        f"VMDB after {workload.days} days x {workload.vms_per_day:,} VMs/day "
        f"(simulated {workload.simulated_per_day}/day, figures x{factor:g}); per VM: {workload.hours:g} h, "
        f"a heartbeat every {workload.heartbeat_minutes:g} min, {workload.log_bytes:,} bytes of logs",
        f"retention: VMs {policy.vm_days:g} days, logs {policy.log_days:g} days, heartbeats compacted after "
        f"{policy.heartbeat_compaction_days:g} days",
        "",
        f"{'':18} {'VM rows':>12} {'log rows':>12} {'heartbeats':>14} {'data+index MB':>14}",
    ]
    for key, label in (("without", "without retention"), ("with", "with retention")):
        m = results[key]
        lines.append(
            f"{label:18} {m.rows['VMs'] * factor:12,.0f} {m.rows['VMLogs'] * factor:12,.0f} "
            f"{m.rows['VMHeartbeats'] * factor:14,.0f} {_mb(m.bytes * factor):>14}"
        )
    ratio = results["without"].bytes / max(1, results["with"].bytes)
    seconds = results["retention_seconds"]
    lines += ["", f"with retention: {ratio:.1f}x smaller; one daily retention pass: mean "
              f"{sum(seconds) / len(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms "
              f"(for {workload.simulated_per_day} VMs/day)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBRetention import RetentionPolicy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Workload()
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--vms-per-day", type=int, default=defaults.vms_per_day)
    parser.add_argument("--scale", type=float, default=defaults.scale, help="fraction of the VMs simulated")
    parser.add_argument("--hours", type=float, default=defaults.hours, help="life of each VM")
    parser.add_argument("--heartbeat-minutes", type=float, default=defaults.heartbeat_minutes)
    parser.add_argument("--log-bytes", type=int, default=defaults.log_bytes, help="bytes of logs per VM")
    parser.add_argument("--vm-days", type=float, default=RetentionPolicy.vm_days)
    parser.add_argument("--log-days", type=float, default=RetentionPolicy.log_days)
    parser.add_argument("--compaction-days", type=float, default=RetentionPolicy.heartbeat_compaction_days)
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    workload = Workload(args.days, args.vms_per_day, args.scale, args.hours, args.heartbeat_minutes,
                        args.log_bytes)
    policy = RetentionPolicy(args.vm_days, args.log_days, args.compaction_days)
    from benchmarks.benchdb import private_mariadb

    with private_mariadb("benchretention") as server:
        started = time.monotonic()
        results = simulate(server, workload, policy)
        print(report(workload, policy, results))
        print(f"(simulation took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
