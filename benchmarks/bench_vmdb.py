"""VMDB on a private MariaDB: how long the calls of one VMDirector cycle take for N VMs.

Starts a throwaway mariadbd (dev/mariadb.py), creates VMDB through DIRAC's DB class, and times
recordVMs, setVMStates, getVMs (one CE, active), getAccountingRecords + markAccounted, and
setBackoff 80 times on one row, from 8 threads at once and from one thread. Prints one line per
call; ``--repeat R`` times the two setBackoff runs R times (each on rows of their own) and prints
every time::

    .venv/bin/python benchmarks/bench_vmdb.py            # N = 1000, 10000
    .venv/bin/python benchmarks/bench_vmdb.py --n 500 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(label: str, call):
    start = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - start
    assert result["OK"], result.get("Message")
    print(f"  {label:<44} {elapsed * 1000:9.1f} ms")
    return result["Value"]


def run(db, n: int, repeat: int = 1) -> None:
    t0 = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
    records = [
        {"vm_name": f"jdirac-{n:06d}{i:026x}", "vm_id": f"id-{i}", "ce": f"ce{i % 4}.example", "site": "CLOUD.B.uk",
         "vo": "vo", "profile": "default", "pilot_reference": f"cloud://ce{i % 4}.example/jdirac-{i:032x}",
         "stamp": f"{i:032x}", "flavor": "m1.small", "cores": 1, "ram_mb": 2048, "created": t0}
        for i in range(n)
    ]
    print(f"N = {n} VMs over 4 CEs")
    timed("recordVMs (all)", lambda: db.recordVMs(records))
    states = {r["vm_name"]: "ACTIVE" for r in records}
    timed("setVMStates (all ACTIVE)", lambda: db.setVMStates(states, when=t0 + dt.timedelta(minutes=2)))
    timed("getVMs(ce=one CE, active_only)", lambda: db.getVMs(ce="ce0.example", active_only=True))
    ended = {r["vm_name"]: "SHUTOFF" for r in records[: n // 4]}
    timed("setVMStates (1/4 SHUTOFF)", lambda: db.setVMStates(ended, when=t0 + dt.timedelta(hours=2)))
    accounting = timed("getAccountingRecords(limit=N)", lambda: db.getAccountingRecords(limit=n))
    timed("markAccounted (those)", lambda: db.markAccounted([r["vm_name"] for r in accounting]))

    for attempt in range(repeat):
        contended, alone = f"ce-busy-{attempt}.example", f"ce-alone-{attempt}.example"

        def backoff(ce=contended):
            for _ in range(10):
                assert db.setBackoff(ce, "", t0 + dt.timedelta(hours=1), "bench")["OK"]

        def parallel():
            threads = [threading.Thread(target=backoff) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return {"OK": True, "Value": None}

        def serial(ce=alone):
            for _ in range(80):
                assert db.setBackoff(ce, "", t0 + dt.timedelta(hours=1), "bench")["OK"]
            return {"OK": True, "Value": None}

        timed("setBackoff x80 from 8 threads (one row)", parallel)
        failures = db.getBackoff(contended)["Value"]["failures"]
        assert failures == 80, f"{failures} failures counted of 80"
        timed("setBackoff x80 from 1 thread", serial)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, action="append", help="number of VMs (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="times the setBackoff runs are repeated")
    args = parser.parse_args()
    from benchmarks.benchdb import private_mariadb, use_vmdb

    with private_mariadb("benchvmdb") as server:
        for n in args.n or [1000, 10000]:
            use_vmdb(server, f"VMDB_bench_{n}")
            from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

            run(VMDB(), n, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
