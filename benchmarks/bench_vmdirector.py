"""The VMDirector's real cycle (``dirac-agent WorkloadManagement/VMDirector``) on LocalCloud and
a private MariaDB (VMDB and DIRAC's PilotAgentsDB), at N VMs over 4 CEs of one project.

- first cycle: ``--ended`` VMs are SHUTOFF with their pilot Done, so the cycle deletes them; each
  DELETE costs ``--delete-ms`` in the cloud (real Nova: 0.2 s and more);
- steady cycle: ``--changed`` %% of the VMs end between cycles; measured as (a run of 3 cycles in
  one process) less (a run of 1), halved: process start-up, CS and schema checks cancel out.

Cycle wall time is the agent's own "Cycle took" line; CPU is the agent process's (rusage of the
child); SQL statements are MariaDB's counters (SHOW GLOBAL STATUS, Com_*), cloud requests
LocalCloud's. Writes JSON next to the printed table::

    .venv/bin/python benchmarks/bench_vmdirector.py                          # N = 5000
    .venv/bin/python benchmarks/bench_vmdirector.py --n 1000 --ended 150 --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import resource
import sys
import tempfile
import types
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "integration")]

SQL = ("Com_select", "Com_insert", "Com_insert_select", "Com_update", "Com_update_multi", "Com_delete",
       "Com_replace")
CES = ["cloud.director.test", "cloud2.director.test", "cloud3.director.test", "cloud4.director.test"]


def sql_counters(mariadb) -> dict[str, int]:
    rows = mariadb.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % ", ".join(f"'{c}'" for c in SQL))
    return {name: int(value) for name, value in rows}


def seed(world, cloud, vmdb, mariadb, n: int, ended: int) -> list[str]:
    """N VMs over the CEs, one bulk write per table; the first `ended` SHUTOFF with pilot Done."""
    from JenniferDIRAC.Resources.Cloud.model import OwnerTags
    from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference
    from test_vmdirector_cycle import INSTALLATION, SITE, VO

    records, pilots, names = [], [], []
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
        names.append(name)
    assert vmdb.db.recordVMs(records)["OK"]
    started = {r["vm_name"]: {"state": "ACTIVE", "started": r["created"] + dt.timedelta(seconds=60)}
               for r in records}
    assert vmdb.db.setVMStates(started)["OK"]
    for chunk in range(0, len(pilots), 1000):
        rows = pilots[chunk:chunk + 1000]
        mariadb.execute(
            "INSERT INTO PilotAgents (PilotJobReference, VO, GridType, DestinationSite, GridSite, Status, "
            "SubmissionTime, LastUpdateTime, PilotStamp) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP() - INTERVAL 3600 SECOND, "
                         "UTC_TIMESTAMP() - INTERVAL 60 SECOND, %s)"] * len(rows)),
            database=world.pilot_db, params=tuple(v for row in rows for v in row),
        )
    return names


def end_some(world, cloud, mariadb, names: list[str], count: int, rng) -> list[str]:
    from JenniferDIRAC.Resources.Cloud.references import pilot_reference

    alive = [s for s in cloud.compute.servers.values() if s.status == "ACTIVE" and s.name in set(names)]
    chosen = rng.sample(alive, min(count, len(alive)))
    for server in chosen:
        cloud.compute.set_state(server.id, "SHUTOFF")
    by_name = {s.name for s in chosen}
    refs = [pilot_reference(CES[names.index(name) % len(CES)], name) for name in by_name]
    if refs:
        mariadb.execute("UPDATE PilotAgents SET Status = 'Done' WHERE PilotJobReference IN (%s)"
                        % ", ".join(["%s"] * len(refs)), database=world.pilot_db, params=tuple(refs))
    return [s.name for s in chosen]


def run(world, cloud, mariadb, cycles: int) -> dict:
    from agent_run import run_agent_once

    cfg = world.tmp / "agent.cfg"
    text = world.cfg([(ce, world.ce_parameters(ce)) for ce in CES[1:]])
    if cycles > 1:
        text = text.replace("PollingTime = 60", "PollingTime = 1")
    cfg.write_text(text.replace("HTTPTimeout = 5", "HTTPTimeout = 120"))
    cloud.counters.reset()
    sql_before = sql_counters(mariadb)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    code, out = run_agent_once("WorkloadManagement/VMDirector", cfg, world.root, timeout=1800, cycles=cycles)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert code == 0 and out.count("VMDirector cycle done") == cycles, out[-4000:]
    sql_after = sql_counters(mariadb)
    took = [float(x) for x in re.findall(r"Cycle took ([0-9.]+) seconds", out)]
    deleted = sum(int(x) for x in re.findall(r"VMDirector cycle done \d+ CEs, \d+ skipped, (\d+) VMs deleted", out))
    sql = {k: sql_after[k] - sql_before[k] for k in SQL}
    return {"cycles": cycles, "cycle_s": took, "cpu_s": (after.ru_utime + after.ru_stime)
            - (usage.ru_utime + usage.ru_stime), "sql": sql, "sql_total": sum(sql.values()),
            "cloud_requests": cloud.counters.total(), "compute_requests": cloud.counters.total("compute"),
            "bytes": cloud.counters.bytes(), "deleted": deleted,
            "by_call": {" ".join(k): v for k, v in sorted(cloud.counters.snapshot().items())}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--ended", type=int, default=779, help="VMs the first cycle deletes")
    parser.add_argument("--changed", type=float, default=1.0, help="%% of VMs ending before a steady cycle")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per request")
    parser.add_argument("--per-server-ms", type=float, default=10.0, help="per server of a detailed listing")
    parser.add_argument("--delete-ms", type=float, default=200.0, help="added to each DELETE")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import random

    from DIRAC import gConfig, gLogger
    from diraccfg import CFG
    from JenniferLocalCloud import LocalCloud

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
            mariadb.create_database(dbname)
            cfg = (f"Systems\n{{\n  Databases\n  {{\n    User = {mariadb.user}\n    Password = {mariadb.password}\n"
                   f"    Host = {mariadb.host}\n    Port = {mariadb.port}\n  }}\n  WorkloadManagement\n  {{\n"
                   f"    Databases\n    {{\n      VMDB\n      {{\n        DBName = {dbname}\n      }}\n    }}\n  }}\n}}\n")
            gConfig.loadCFG(CFG().loadFromBuffer(cfg))
            from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

            vmdb = types.SimpleNamespace(db=VMDB(), dbname=dbname, cfg=cfg)
            (tmp / "world").mkdir()
            world = World(cloud, mariadb, vmdb, tmp / "world")
            names = seed(world, cloud, vmdb, mariadb, args.n, args.ended)
            print(f"seeded {args.n} VMs over {len(CES)} CEs of one project, {args.ended} ended", file=sys.stderr)
            first = run(world, cloud, mariadb, 1)
            cloud.compute.finish_deletions()
            changed = round(args.n * args.changed / 100)
            cloud.clock.advance(120)
            end_some(world, cloud, mariadb, names, changed, rng)
            one = run(world, cloud, mariadb, 1)
            cloud.compute.finish_deletions()
            cloud.clock.advance(120)
            end_some(world, cloud, mariadb, names, changed, rng)
            three = run(world, cloud, mariadb, 3)
        finally:
            cloud.stop()
            mariadb.destroy()
    steady = {
        "cycle_s": three["cycle_s"][1:],
        "cpu_s": (three["cpu_s"] - one["cpu_s"]) / 2,
        "sql_total": (three["sql_total"] - one["sql_total"]) / 2,
        "cloud_requests": (three["cloud_requests"] - one["cloud_requests"]) / 2,
    }
    doc = {"settings": vars(args) | {"json": str(args.json) if args.json else None}, "first": first,
           "new_process_cycle": one, "three_cycles": three, "steady": steady}
    print(f"VMDirector, real dirac-agent cycles, N = {args.n}, 4 CEs of one project; {args.latency_ms:g} ms per "
          f"request, {args.per_server_ms:g} ms per listed server, +{args.delete_ms:g} ms per DELETE")
    print(f"  first cycle: {first['deleted']} VMs deleted in {first['cycle_s'][0]:.2f} s, "
          f"{first['cloud_requests']} cloud requests, {first['sql_total']} SQL statements {first['sql']}")
    print(f"  steady cycle ({args.changed:g}% ended before each): {', '.join(f'{s:.2f}' for s in steady['cycle_s'])} s "
          f"wall, {steady['cpu_s']:.2f} s CPU (agent process, per cycle), {steady['cloud_requests']:.1f} cloud "
          f"requests, {steady['sql_total']:.0f} SQL statements")
    targets = [
        (f"VMDirector first cycle, {first['deleted']} deletions at {args.delete_ms:g} ms per DELETE: wall s", "< 15 s",
         first["cycle_s"][0],
         first["cycle_s"][0] < 15),
        ("VMDirector steady cycle: wall s", "< 0.5 s", max(steady["cycle_s"]), max(steady["cycle_s"]) < 0.5),
        ("VMDirector steady cycle: CPU s", "< 0.3 s", steady["cpu_s"], steady["cpu_s"] < 0.3),
        ("VMDirector steady cycle: cloud requests (1 project)", "<= 2", steady["cloud_requests"],
         steady["cloud_requests"] <= 2),
        ("VMDirector steady cycle: SQL statements", "<= 200", steady["sql_total"], steady["sql_total"] <= 200),
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
