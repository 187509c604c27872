"""CPU of three parts of a steady VMDirector cycle (issue 17: N = 5,000 VMs over 4 CEs of one
project, 1% of the VMs changed per cycle), measured on inputs built once, for the code of this
checkout and, side by side, of an earlier commit (``--before``):

- pilot records: ``PilotRecords.records`` of each CE's 1,250 references, on DIRAC's PilotAgentsDB
  in a private MariaDB (seeded as bench_vmdirector seeds it, each Running pilot with a job);
  1% of the pilots become Done between cycles;
- decide: ``VMLifecycle.decide`` on one CE's view of 1,250 VMs (the listing's VM objects kept
  between cycles as the shared listing keeps them; 1% of the VMs SHUTOFF with their pilot Done
  each cycle, the ones ended the cycle before gone), and the same times 4 CEs;
- ce config: ``CloudCEConfig.from_ce_parameters`` as a cycle calls it for 4 CEs of one queue
  each (the CE with its first queue, the CE level, the queue: Director/cloudaccess.py and
  Director/thresholds.py).

Each code tree runs in a child process of its own (``git archive <commit>`` of JenniferDIRAC and
the test kit into a temporary directory for ``--before``), on the same seeded database. CPU is
``time.process_time()`` of the child (MariaDB's own CPU is not in it); each figure is the median
of the steady cycles (the first cycle, which fills any cache, is shown apart)::

    nice -n 10 .venv/bin/python benchmarks/bench_director_cpu.py --before 4704132
    .venv/bin/python benchmarks/bench_director_cpu.py --cycles 5          # this checkout only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CES = ["cloud.director.test", "cloud2.director.test", "cloud3.director.test", "cloud4.director.test"]
INSTALLATION, SITE, VO = "bench-installation", "Cloud.Director.test", "benchvo"
PARTS = ("pilot records (4 CEs)", "decide (1 CE)", "decide (4 CEs)", "from_ce_parameters (4 CEs)")


# --- the parent: the database, the trees, the table --------------------------------------------
def names(n: int) -> dict[str, str]:
    """{VM name: its CE} of the N VMs (the same in every child)."""
    rng = random.Random(17)
    return {f"jdirac-{rng.getrandbits(128):032x}": CES[i % len(CES)] for i in range(n)}


def seed_pilots(mariadb, database: str, vms: dict[str, str]) -> None:
    """Every VM's pilot Running with a job, submitted an hour ago (the state each child starts from)."""
    from benchmarks.benchdb import insert_pilots
    from JenniferDIRAC.Resources.Cloud.references import pilot_reference

    mariadb.execute("DELETE FROM JobToPilotMapping", database=database)
    mariadb.execute("DELETE FROM PilotAgents", database=database)
    pilots = [(pilot_reference(ce, name), VO, "Cloud", ce, SITE, "Running", f"{i:032x}")
              for i, (name, ce) in enumerate(vms.items())]
    insert_pilots(mariadb, database, pilots, first_id=1, jobs=True)


def tree_of(commit: str, into: Path) -> Path:
    """JenniferDIRAC and the lifecycle test kit at `commit`, unpacked into `into`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "JenniferDIRAC",
                              "tests/unit/lifecycle_testkit.py"], check=True, capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(tree: Path, settings: dict) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("DIRACSYSCONFIG", None)
    done = subprocess.run([sys.executable, __file__, "--child", str(tree), json.dumps(settings)], env=env,
                          capture_output=True, text=True, timeout=1800)
    if settings["profile"]:
        print(done.stderr, file=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"the child on {tree} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="VMs over the 4 CEs")
    parser.add_argument("--changed", type=float, default=1.0, help="%% of the VMs ending before each cycle")
    parser.add_argument("--cycles", type=int, default=7, help="cycles per part (the first one apart)")
    parser.add_argument("--before", default="", help="a commit to measure side by side (git archive)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", action="store_true", help="each part's cProfile (tottime) on stderr")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), json.loads(args.child[1]))
    sys.path[:0] = [str(REPO)]
    import DIRAC

    from dev.mariadb import MariaDBServer

    vms = names(args.n)
    with tempfile.TemporaryDirectory(prefix="bench-dcpu-") as tmp:
        tmp = Path(tmp)
        mariadb = MariaDBServer(tmp / "db")
        mariadb.start()
        try:
            schema = Path(DIRAC.__file__).parent / "WorkloadManagementSystem" / "DB" / "PilotAgentsDB.sql"
            sql = tmp / "pilotagents.sql"
            sql.write_text(re.sub(r"(?m)^USE .*;$", "", schema.read_text()))
            database = "PilotAgentsDB_bench"
            mariadb.create_database(database, sql)
            settings = {"n": args.n, "changed": args.changed, "cycles": args.cycles, "database": database,
                        "profile": args.profile, "db": {"user": mariadb.user, "password": mariadb.password, "host": mariadb.host,
                               "port": mariadb.port}, "auth": str(tmp / "cloud.auth")}
            trees = [("this checkout", REPO)]
            if args.before:
                trees.insert(0, (f"before ({args.before})", tree_of(args.before, tmp / "before")))
            results = {}
            for label, tree in trees:
                seed_pilots(mariadb, database, vms)
                results[label] = measure(tree, settings)
                print(f"measured {label}", file=sys.stderr)
        finally:
            mariadb.destroy()
    print(f"VMDirector cycle parts, CPU ms per cycle (median of {args.cycles - 1} steady cycles; first cycle in "
          f"brackets), N = {args.n} VMs over {len(CES)} CEs, {args.changed:g}% changed per cycle")
    labels = list(results)
    print(f"  {'part':<28}" + "".join(f"{label:>30}" for label in labels)
          + ("      change" if len(labels) == 2 else ""))
    for part in PARTS:
        row = f"  {part:<28}"
        for label in labels:
            figures = results[label][part]
            row += f"{figures['steady_ms']:>19.1f} [{figures['first_ms']:>7.1f}] "
        if len(labels) == 2:
            old, new = (results[label][part]["steady_ms"] for label in labels)
            row += f"  {(new - old) / old * 100:+7.0f}%" if old else ""
        print(row)
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "results": results},
                                        indent=2, default=str))
    return 0


# --- a child: one code tree --------------------------------------------------------------------
def figures(samples: list[float]) -> dict:
    steady = samples[1:] or samples
    return {"first_ms": samples[0] * 1000, "steady_ms": statistics.median(steady) * 1000,
            "samples_ms": [round(s * 1000, 3) for s in samples]}


PROFILES: dict[str, object] = {}


def cpu(call, part: str = "") -> float:
    """CPU seconds of `call()`; profiled as `part` with --profile (the figure then includes cProfile's cost)."""
    profile = PROFILES.get(part)
    if profile is not None:
        profile.enable()
    started = time.process_time()
    call()
    spent = time.process_time() - started
    if profile is not None:
        profile.disable()
    return spent


def child(tree: Path, settings: dict) -> int:
    sys.path[:0] = [str(tree), str(tree / "tests" / "unit")]
    from DIRAC import gConfig, gLogger
    from diraccfg import CFG

    import JenniferDIRAC

    assert Path(JenniferDIRAC.__file__).resolve().is_relative_to(tree.resolve()), JenniferDIRAC.__file__
    gLogger.setLevel("ERROR")
    db = settings["db"]
    gConfig.loadCFG(CFG().loadFromBuffer(
        f"DIRAC\n{{\n  InstallationName = {INSTALLATION}\n}}\n"
        f"Systems\n{{\n  Databases\n  {{\n    User = {db['user']}\n    Password = {db['password']}\n"
        f"    Host = {db['host']}\n    Port = {db['port']}\n  }}\n  WorkloadManagement\n  {{\n"
        f"    Databases\n    {{\n      PilotAgentsDB\n      {{\n        DBName = {settings['database']}\n"
        f"      }}\n    }}\n  }}\n}}\n"))
    vms = names(settings["n"])
    changed = max(1, round(settings["n"] * settings["changed"] / 100)) if settings["changed"] > 0 else 0
    cycles = settings["cycles"]
    if settings.get("profile"):
        import cProfile

        PROFILES.update((part, cProfile.Profile()) for part in PARTS if part != PARTS[1])
    result = {PARTS[0]: figures(pilot_record_cycles(vms, changed, cycles, settings["database"]))}
    one, four = decide_cycles(vms, changed, cycles)
    result[PARTS[1]], result[PARTS[2]] = figures(one), figures(four)
    result[PARTS[3]] = figures(ce_config_cycles(cycles, settings["auth"]))
    for part, profile in PROFILES.items():
        import pstats

        print(f"--- {part}", file=sys.stderr)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    print(json.dumps(result))
    return 0


def pilot_record_cycles(vms: dict[str, str], changed: int, cycles: int, database: str) -> list[float]:
    """CPU of each cycle's PilotRecords.records for the 4 CEs; `changed` pilots become Done before
    each cycle after the first."""
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    from JenniferDIRAC.Resources.Cloud.references import pilot_reference
    from JenniferDIRAC.WorkloadManagementSystem.Director.pilotrecords import PilotRecords

    db = PilotAgentsDB()
    records = PilotRecords(db)
    references = {ce: {pilot_reference(ce, name) for name, of in vms.items() if of == ce} for ce in CES}
    running = sorted(pilot_reference(ce, name) for name, ce in vms.items())
    rng = random.Random(3)
    samples = []
    for cycle in range(cycles):
        if cycle and changed:
            ended = rng.sample(running, changed)
            running = sorted(set(running) - set(ended))
            update = db._update("UPDATE PilotAgents SET Status = 'Done', LastUpdateTime = UTC_TIMESTAMP() "
                                f"WHERE PilotJobReference IN ({', '.join(['%s'] * len(ended))})", args=ended)
            assert update["OK"], update
        read = {}
        samples.append(cpu(lambda: read.update((ce, records.records(ce, references[ce])) for ce in CES), PARTS[0]))
        assert sum(len(r) for r in read.values()) == len(vms), {ce: len(r) for ce, r in read.items()}
    return samples


def decide_cycles(vms: dict[str, str], changed: int, cycles: int) -> tuple[list[float], list[float]]:
    """CPU of decide on the first CE's view (1,250 VMs) and on the 4 CEs' views, each cycle."""
    from lifecycle_testkit import thresholds

    from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
    from JenniferDIRAC.Resources.Cloud.references import pilot_reference
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import CEView, PilotRecord, VMRecord, decide

    now = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
    th = thresholds(max_lifetime=14 * 86400, heartbeat_timeout=3600)
    worlds = {}
    for ce in CES:
        owner = OwnerTags(installation=INSTALLATION, ce=ce, vo=VO, site=SITE)
        listing, pilots, records = {}, {}, {}
        for i, name in enumerate(name for name, of in vms.items() if of == ce):
            created = now - dt.timedelta(seconds=3600 + i)
            metadata = {**owner.to_metadata(), "jdirac-stamp": f"{i:032x}"}
            listing[name] = VM(id=f"id-{ce}-{i}", name=name, state=VMState.ACTIVE, created=created, updated=created,
                               launched=created + dt.timedelta(seconds=60), metadata=metadata)
            ref = pilot_reference(ce, name)
            pilots[ref] = PilotRecord(ref, "Running", now - dt.timedelta(seconds=60), created, 1000 + i)
            records[name] = VMRecord(name, ce, pilot_reference=ref, vm_id=f"id-{ce}-{i}", cloud_state="ACTIVE",
                                     created=created, started=created + dt.timedelta(seconds=60),
                                     last_heartbeat=now - dt.timedelta(seconds=100))
        worlds[ce] = (owner, listing, pilots, records)
    rng = random.Random(5)
    per_ce = max(1, changed // len(CES)) if changed else 0
    one, four = [], []
    ending: dict[str, list[str]] = {ce: [] for ce in CES}
    for cycle in range(cycles):
        now += dt.timedelta(seconds=120)
        views = []
        for ce, (owner, listing, pilots, records) in worlds.items():
            for name in ending[ce]:  # deleted last cycle: gone from the listing, the record closed and accounted
                del listing[name]
                import dataclasses

                records[name] = dataclasses.replace(records[name], deleted=now, accounted=True)
            ending[ce] = rng.sample(sorted(n for n, vm in listing.items() if vm.state is VMState.ACTIVE),
                                    per_ce) if cycle else []
            for name in ending[ce]:
                vm = listing[name]
                listing[name] = VM(id=vm.id, name=name, state=VMState.SHUTOFF, created=vm.created, updated=now,
                                   launched=vm.launched, metadata=dict(vm.metadata))
                ref = pilot_reference(ce, name)
                pilots[ref] = PilotRecord(ref, "Done", now, pilots[ref].submitted, pilots[ref].job_id)
            fresh = {name: r for name, r in records.items() if r.deleted is None or not r.accounted}
            views.append(CEView(owner, list(listing.values()), dict(pilots), fresh, {}, now, th))
        decisions = []
        one.append(cpu(lambda: decisions.append(decide(views[0]))))
        four.append(cpu(lambda: decisions.extend(decide(view) for view in views), PARTS[2]))
        deleted = sum(1 for d in decisions[1:] for a in d.actions if type(a).__name__ == "DeleteVM")
        assert deleted == sum(len(e) for e in ending.values()), (deleted, cycle)
    return one, four


def ce_config_cycles(cycles: int, auth: str) -> list[float]:
    """CPU of each cycle's from_ce_parameters calls for the 4 CEs, each with one queue."""
    from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
    from JenniferDIRAC.Resources.Cloud.errors import CloudError

    def ce_level(ce: str) -> dict:  # as the CS gives it (World.ce_parameters of test_vmdirector_cycle)
        return {"CEType": "Cloud", "CloudType": "OPENSTACK", "Driver_ex_force_auth_url": "http://127.0.0.1:1/identity",
                "Driver_ex_force_auth_version": "3.x_password", "Driver_ex_tenant_name": "bench-project",
                "CloudAuth": auth, "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small",
                "Instance_Networks": "name:private", "InstallationName": INSTALLATION, "Site": SITE,
                "Community": VO, "HTTPTimeout": "5", "HS06PerCore": "12.5", "ApelPublish": "Jobs",
                "MaxTotalJobs": "100", "MaxWaitingJobs": "50", "GridCE": ce}

    def queue(ce: str) -> dict:  # getQueuesResolved's parameters over the CE's
        return {**ce_level(ce), "Queue": "default", "QueueName": f"{ce}_default", "CEName": ce, "GridCE": ce,
                "CPUTime": "86400", "Tag": ["MultiProcessor", "el9"], "RequiredTag": [], "VO": [VO]}

    calls = [(ce, params) for ce in CES for params in (queue(ce), ce_level(ce), queue(ce))]
    built = []

    def cycle():
        for ce, params in calls:
            try:
                built.append(CloudCEConfig.from_ce_parameters(ce, dict(params)))
            except CloudError:
                pass

    samples = [cpu(cycle, PARTS[3]) for _ in range(cycles)]
    assert len(built) == len(calls) * cycles and all(c.installation == INSTALLATION for c in built)
    return samples


if __name__ == "__main__":
    sys.exit(main())
