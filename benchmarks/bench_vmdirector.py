"""The VMDirector's real cycles (``dirac-agent WorkloadManagement/VMDirector``) on LocalCloud and
a private MariaDB (VMDB and DIRAC's PilotAgentsDB), at N VMs over 4 CEs of one project.

One agent process runs 1 + ``--steady`` cycles, ``--polling`` seconds apart. Its output is
streamed; when a cycle ends (its "Cycle took" line, after "VMDirector cycle done") that cycle's
figures are taken, then the next ``--changed`` %% of the VMs end (SHUTOFF, pilot Done) before
the next cycle starts:

- first cycle: ``--ended`` VMs are SHUTOFF with their pilot Done, so the cycle deletes them; each
  DELETE costs ``--delete-ms`` in the cloud (real Nova: 0.2 s and more);
- steady cycles: each follows ``--changed`` %% of the VMs ending, and must delete exactly those
  (the run fails otherwise); the targets are judged on the median of the steady cycles.

Per cycle: wall time is the agent's own "Cycle took" line; CPU the agent process's (utime +
stime of /proc/<pid>/stat, all its threads); SQL statements MariaDB's counters (SHOW GLOBAL
STATUS, Com_*); cloud requests LocalCloud's, split into listing/monitoring requests (reads of
servers and limits), DELETEs and the others (tokens, version discovery, flavor lookups), with the
bytes of the answers. Writes JSON next to the printed table::

    .venv/bin/python benchmarks/bench_vmdirector.py                          # N = 5000
    .venv/bin/python benchmarks/bench_vmdirector.py --n 5000 --ended 779 --per-server-ms 1 --delete-ms 200
    .venv/bin/python benchmarks/bench_vmdirector.py --n 1000 --ended 150 --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "integration")]

SQL = ("Com_select", "Com_insert", "Com_insert_select", "Com_update", "Com_update_multi", "Com_delete",
       "Com_replace")
CES = ["cloud.director.test", "cloud2.director.test", "cloud3.director.test", "cloud4.director.test"]
DIRAC_AGENT = Path(sys.executable).parent / "dirac-agent"
CYCLE_DONE = re.compile(r"VMDirector cycle done (\d+) CEs, (\d+) skipped, (\d+) VMs deleted")
CYCLE_TOOK = re.compile(r"Cycle took ([0-9.]+) seconds")


def sql_counters(mariadb) -> dict[str, int]:
    rows = mariadb.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % ", ".join(f"'{c}'" for c in SQL))
    return {name: int(value) for name, value in rows}


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (every thread's), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed(world, cloud, vmdb, mariadb, n: int, ended: int) -> dict[str, str]:
    """N VMs over the CEs, one bulk write per table; the first `ended` SHUTOFF with pilot Done.
    {VM name: its CE}."""
    from benchmarks.benchdb import insert_pilots
    from JenniferDIRAC.Resources.Cloud.model import OwnerTags
    from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference
    from test_vmdirector_cycle import INSTALLATION, SITE, VO

    records, pilots, names = [], [], {}
    now = cloud.clock.now()
    for i in range(n):
        ce = CES[i % len(CES)]
        name = make_vm_name()
        created = now - 3600 - i
        status = "SHUTOFF" if i < ended else "ACTIVE"
        server = cloud.compute.add_server(
            name, cloud.project_id, status=status, created=created,
            metadata=OwnerTags(installation=INSTALLATION, ce=ce, vo=VO, site=SITE).to_metadata(),
        )
        server.updated = created
        created_dt = dt.datetime.fromtimestamp(created, dt.UTC)
        records.append({"vm_name": name, "vm_id": server.id, "ce": ce, "site": SITE, "vo": VO, "profile": "",
                        "pilot_reference": pilot_reference(ce, name), "stamp": uuid.uuid4().hex,
                        "flavor": "m1.small", "cores": 1, "ram_mb": 2048, "created": created_dt})
        pilots.append((pilot_reference(ce, name), VO, "Cloud", ce, SITE, "Done" if i < ended else "Running",
                       uuid.uuid4().hex))
        names[name] = ce
    assert vmdb.db.recordVMs(records)["OK"]
    started = {r["vm_name"]: {"state": "ACTIVE", "started": r["created"] + dt.timedelta(seconds=60)}
               for r in records}
    assert vmdb.db.setVMStates(started)["OK"]
    insert_pilots(mariadb, world.pilot_db, pilots)
    return names


def end_some(world, cloud, mariadb, names: dict[str, str], count: int, rng) -> list[str]:
    """`count` ACTIVE VMs end: SHUTOFF in the cloud, their pilot Done. Their names."""
    from JenniferDIRAC.Resources.Cloud.references import pilot_reference

    alive = sorted((s for s in cloud.compute.servers.values() if s.status == "ACTIVE" and s.name in names),
                   key=lambda s: s.name)
    chosen = rng.sample(alive, min(count, len(alive)))
    for server in chosen:
        cloud.compute.set_state(server.id, "SHUTOFF")
    refs = [pilot_reference(names[s.name], s.name) for s in chosen]
    if refs:
        mariadb.execute("UPDATE PilotAgents SET Status = 'Done' WHERE PilotJobReference IN (%s)"
                        % ", ".join(["%s"] * len(refs)), database=world.pilot_db, params=tuple(refs))
    return [s.name for s in chosen]


def is_listing(service: str, method: str, template: str) -> bool:
    """A listing or monitoring request: a read of servers (their list, one of them, its console,
    the limits); not a DELETE, token, version discovery or flavor/image lookup."""
    return service == "compute" and method == "GET" and (template.startswith("/v2.1/servers")
                                                         or template.startswith("/v2.1/limits"))


class Meter:
    """The counters a cycle is measured by: taken before it and after it."""

    def __init__(self, cloud, mariadb, pid: int):
        self.cloud, self.mariadb, self.pid = cloud, mariadb, pid

    def read(self) -> dict:
        counters = self.cloud.counters
        calls = counters.snapshot()
        return {"cpu": cpu_seconds(self.pid), "sql": sql_counters(self.mariadb), "calls": calls,
                "bytes": counters.bytes(),
                "listing_bytes": sum(counters.bytes(*key) for key in calls if is_listing(*key))}

    @staticmethod
    def figures(before: dict, after: dict, took: float, deleted: int, skipped: int) -> dict:
        calls = {k: after["calls"].get(k, 0) - before["calls"].get(k, 0) for k in after["calls"]}
        calls = {k: v for k, v in calls.items() if v}
        deletes = sum(v for (_, method, _), v in calls.items() if method == "DELETE")
        listing = sum(v for key, v in calls.items() if is_listing(*key))
        sql = {k: after["sql"][k] - before["sql"][k] for k in SQL}
        return {"cycle_s": took, "cpu_s": round(after["cpu"] - before["cpu"], 3), "sql": sql,
                "sql_total": sum(sql.values()), "cloud_requests": sum(calls.values()),
                "listing_requests": listing, "delete_requests": deletes,
                "other_requests": sum(calls.values()) - listing - deletes,
                "bytes": after["bytes"] - before["bytes"],
                "listing_bytes": after["listing_bytes"] - before["listing_bytes"],
                "deleted": deleted, "skipped": skipped,
                "by_call": {" ".join(k): v for k, v in sorted(calls.items())}}


def run_cycles(world, cloud, mariadb, names, args, rng) -> list[dict]:
    """One agent process, 1 + args.steady cycles; between cycles, args.changed %% of the VMs end."""
    cycles = 1 + args.steady
    cfg = world.tmp / "agent.cfg"
    params = world.ce_parameters
    if args.max_delete_threads:  # the CE option, on each CE (the project's pool takes the smallest)
        world.ce_parameters = lambda ce=CES[0], auth_url=None: dict(params(ce, auth_url),
                                                                    MaxDeleteThreads=str(args.max_delete_threads))
    text = world.cfg([(ce, world.ce_parameters(ce)) for ce in CES[1:]])
    text = text.replace("PollingTime = 60", f"PollingTime = {args.polling}")
    cfg.write_text(text.replace("HTTPTimeout = 5", "HTTPTimeout = 120"))
    env = dict(os.environ, DIRAC_ROOT_PATH=str(world.root), PYTHONUNBUFFERED="1")
    env.pop("DIRACSYSCONFIG", None)
    changed = max(1, round(args.n * args.changed / 100)) if args.changed > 0 else 0
    meter = None
    before = None
    results: list[dict] = []
    expected = args.ended
    ended_now: list[str] = []
    done = None
    tail: list[str] = []
    launched = time.monotonic()
    proc = subprocess.Popen(
        [str(DIRAC_AGENT), "WorkloadManagement/VMDirector", "--cfg", str(cfg), "-o", f"MaxCycles={cycles}",
         "-o", "LogOutputs=stdout"],
        cwd=world.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    killer = threading.Timer(args.timeout, proc.kill)
    killer.start()
    try:
        meter = Meter(cloud, mariadb, proc.pid)
        before = meter.read()  # the first cycle: from process start (imports, CS, schema checks)
        for line in proc.stdout:
            tail = (tail + [line])[-200:]
            if args.verbose:
                print(f"{time.monotonic() - launched:8.2f} {line}", end="", file=sys.stderr)
            if "Starting cycle for module" in line and not results:
                before["cpu"] = cpu_seconds(proc.pid)  # the first cycle's CPU without the start-up
            if match := CYCLE_DONE.search(line):
                done = match
                continue
            if done is None or not (match := CYCLE_TOOK.search(line)):
                continue
            after = meter.read()
            figures = Meter.figures(before, after, float(match.group(1)), int(done.group(3)), int(done.group(2)))
            figures["ended_before"] = expected
            results.append(figures)
            print(f"  cycle {len(results)}: {figures['cycle_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU, "
                  f"{figures['deleted']}/{expected} deleted, {figures['listing_requests']} listing + "
                  f"{figures['delete_requests']} DELETE + {figures['other_requests']} other requests, "
                  f"{figures['sql_total']} SQL", file=sys.stderr)
            done = None
            if len(results) == cycles:
                continue
            cloud.compute.finish_deletions()
            cloud.clock.advance(120)
            ended_now = end_some(world, cloud, mariadb, names, changed, rng)
            expected = len(ended_now)
            before = meter.read()  # after the change: its own SQL is not the agent's
        code = proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(tail)
    if code != 0 or len(results) != cycles:
        raise SystemExit(f"the agent ran {len(results)} of {cycles} cycles (exit {code}):\n{output[-4000:]}")
    wrong = [(i + 1, r["deleted"], r["ended_before"]) for i, r in enumerate(results)
             if r["deleted"] != r["ended_before"] or r["skipped"]]
    if wrong:
        raise SystemExit(f"cycles that did not delete exactly the VMs that ended, or skipped a CE "
                         f"(cycle, deleted, ended): {wrong}\n{output[-4000:]}")
    return results


def median(cycles: list[dict], key: str) -> float:
    return statistics.median(c[key] for c in cycles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--ended", type=int, default=779, help="VMs the first cycle deletes")
    parser.add_argument("--changed", type=float, default=1.0, help="%% of VMs ending before each steady cycle")
    parser.add_argument("--steady", type=int, default=5, help="steady cycles after the first")
    parser.add_argument("--polling", type=int, default=3, help="the agent's PollingTime, s")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per request")
    parser.add_argument("--per-server-ms", type=float, default=10.0, help="per server of a detailed listing")
    parser.add_argument("--delete-ms", type=float, default=200.0, help="added to each DELETE")
    parser.add_argument("--max-delete-threads", type=int, default=0,
                        help="the CEs' MaxDeleteThreads (0: the CE's default)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="the whole agent run, s")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--verbose", action="store_true", help="the agent's output, timed, on stderr")
    args = parser.parse_args()
    import random

    from DIRAC import gLogger
    from JenniferLocalCloud import LocalCloud

    from benchmarks.benchdb import use_vmdb
    from dev.mariadb import MariaDBServer
    from test_vmdirector_cycle import World

    gLogger.setLevel("ERROR")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-vmd-") as tmp:
        tmp = Path(tmp)
        mariadb = MariaDBServer(tmp / "db")
        mariadb.start()
        cloud = LocalCloud(latency=args.latency_ms / 1000).start()
        try:
            cloud.compute.set_quota(instances=-1, cores=-1, ram=-1)
            cloud.compute.detail_seconds_per_server = args.per_server_ms / 1000
            cloud.faults.slow(args.delete_ms / 1000, service="compute", method="DELETE")
            dbname = "VMDB_bench"
            cfg = use_vmdb(mariadb, dbname)
            from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

            vmdb = types.SimpleNamespace(db=VMDB(), dbname=dbname, cfg=cfg)
            (tmp / "world").mkdir()
            world = World(cloud, mariadb, vmdb, tmp / "world")
            names = seed(world, cloud, vmdb, mariadb, args.n, args.ended)
            print(f"seeded {args.n} VMs over {len(CES)} CEs of one project, {args.ended} ended", file=sys.stderr)
            started = time.monotonic()
            cycles = run_cycles(world, cloud, mariadb, names, args, rng)
            print(f"{len(cycles)} cycles in {time.monotonic() - started:.0f} s", file=sys.stderr)
        finally:
            cloud.stop()
            mariadb.destroy()
    first, steady_cycles = cycles[0], cycles[1:]
    steady = {key: median(steady_cycles, key) for key in
              ("cycle_s", "cpu_s", "sql_total", "cloud_requests", "listing_requests", "delete_requests", "other_requests", "bytes",
               "listing_bytes", "deleted")}
    steady["cycles"] = len(steady_cycles)
    doc = {"settings": vars(args) | {"json": str(args.json) if args.json else None}, "first": first,
           "steady_cycles": steady_cycles, "steady": steady}
    print(f"VMDirector, real dirac-agent cycles, N = {args.n}, 4 CEs of one project; {args.latency_ms:g} ms per "
          f"request, {args.per_server_ms:g} ms per listed server, +{args.delete_ms:g} ms per DELETE, MaxDeleteThreads "
          f"{args.max_delete_threads or 'default'}")
    print(f"  first cycle: {first['deleted']} VMs deleted in {first['cycle_s']:.2f} s, {first['cpu_s']:.2f} s CPU, "
          f"{first['listing_requests']} listing + {first['delete_requests']} DELETE + {first['other_requests']} other "
          f"requests, "
          f"{first['sql_total']} SQL statements {first['sql']}")
    print(f"  steady cycles ({args.changed:g}% of the VMs ended before each):")
    for i, c in enumerate(steady_cycles, 2):
        print(f"    cycle {i}: {c['cycle_s']:.2f} s wall, {c['cpu_s']:.2f} s CPU, {c['deleted']} deleted, "
              f"{c['listing_requests']} listing + {c['delete_requests']} DELETE + {c['other_requests']} other requests "
              f"({c['listing_bytes']} bytes listed), {c['sql_total']} SQL statements")
    print(f"  steady median of {len(steady_cycles)}: {steady['cycle_s']:.2f} s wall, {steady['cpu_s']:.2f} s CPU, "
          f"{steady['listing_requests']:g} listing requests, {steady['sql_total']:g} SQL statements")
    targets = [
        (f"VMDirector first cycle, {first['deleted']} deletions at {args.delete_ms:g} ms per DELETE: wall s", "< 15 s",
         first["cycle_s"], first["cycle_s"] < 15),
        ("VMDirector steady cycle (median): wall s", "< 0.5 s", steady["cycle_s"], steady["cycle_s"] < 0.5),
        ("VMDirector steady cycle (median): CPU s", "< 0.3 s", steady["cpu_s"], steady["cpu_s"] < 0.3),
        ("VMDirector steady cycle (median): listing/monitoring requests (1 project)", "<= 2",
         steady["listing_requests"], steady["listing_requests"] <= 2),
        ("VMDirector steady cycle (median): SQL statements", "<= 200", steady["sql_total"],
         steady["sql_total"] <= 200),
    ]
    doc["targets"] = [{"target": t, "goal": g, "measured": m, "status": "PASS" if ok else "FAIL"}
                      for t, g, m, ok in targets]
    for row in doc["targets"]:
        print(f"target {row['target']}: {row['goal']}, measured {row['measured']:.2f} -> {row['status']}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
