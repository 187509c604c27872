"""SQL statements per 1,000 heartbeats sent over HTTP to the VM endpoint, on a private MariaDB:
one write per heartbeat (v0.1.0's path: VMEndpointApp without a buffer) against the batched
writes of the VMEndpoint agent (heartbeats.py, HeartbeatBatchRows rows per batch).

Counted with MariaDB's own counters (SHOW GLOBAL STATUS: Com_insert, Com_update, Com_update_multi, Com_delete,
Com_select, Questions) over the heartbeats alone; the per-request record check (the 410 rule)
is one SELECT per heartbeat in both. Prints a table and writes JSON::

    .venv/bin/python benchmarks/bench_heartbeats.py                  # N = 1000, batch 200
    .venv/bin/python benchmarks/bench_heartbeats.py --n 5000 --batch-rows 500 --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COUNTERS = ("Com_insert", "Com_update", "Com_update_multi", "Com_delete", "Com_select", "Questions")


def counters(db) -> dict[str, int]:
    result = db._query("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % ", ".join(f"'{c}'" for c in COUNTERS))
    assert result["OK"], result
    return {name: int(value) for name, value in result["Value"]}


def send(app_factory, db, names: list[str], label: str) -> dict:
    import requests

    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer

    authority = TokenAuthority([b"bench-heartbeats-secret-0123456789abcdef"])
    app, buffer = app_factory(authority)
    server = EndpointServer(app, "127.0.0.1", 0)
    server.start()
    tokens = {name: authority.issue(name, 3600) for name in names}
    try:
        before = counters(db)
        start = time.perf_counter()

        def beat(chunk):
            with requests.Session() as session:
                for name in chunk:
                    response = session.post(f"{server.url}/vm/v1/{name}/heartbeat", data=b"0.5 0.5 0.5 1/1 1",
                                            headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=60)
                    assert response.status_code == 204, response.text

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(beat, [names[i::8] for i in range(8)]))
        server.stop()  # graceful stop: the app's shutdown writes what is buffered
        if buffer is not None:
            assert buffer.close() == 0
        elapsed = time.perf_counter() - start
        after = counters(db)
    finally:
        server.stop()
    delta = {name: after[name] - before[name] for name in COUNTERS}
    delta["Questions"] -= 2  # the two SHOW GLOBAL STATUS
    stored = db._query(
        "SELECT COUNT(*) FROM VMHeartbeats WHERE `VMName` IN (%s)" % ", ".join(["%s"] * len(names)), args=tuple(names)
    )["Value"][0][0]
    assert stored == len(names), f"{label}: {stored} of {len(names)} heartbeats stored"
    return {"label": label, "heartbeats": len(names), "seconds": round(elapsed, 3), **delta}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="heartbeats (one per VM)")
    parser.add_argument("--batch-rows", type=int, default=200, help="HeartbeatBatchRows")
    parser.add_argument("--flush-ms", type=int, default=1000, help="HeartbeatFlushMilliseconds")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    from benchmarks.benchdb import private_vmdb

    with private_vmdb("benchhb", "VMDB_bench_hb"):
        from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB
        from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
        from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.heartbeats import (
            HeartbeatBatching,
            HeartbeatBuffer,
        )
        from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import VMStateStore

        db = VMDB()
        store = VMStateStore(db)
        limits = EndpointLimits(max_concurrent_requests=64)
        rows = []
        for kind in ("one write per heartbeat", "batched"):
            names = [f"jdirac-hb{kind[0]}{i:06d}" for i in range(args.n)]
            created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            assert db.recordVMs([
                {"vm_name": n, "vm_id": "id-" + n, "ce": "ce.example", "site": "CLOUD.B.uk", "vo": "vo",
                 "profile": "default", "pilot_reference": f"cloud://ce.example/{n}", "stamp": "0" * 32,
                 "flavor": "m1.small", "cores": 1, "ram_mb": 2048, "created": created} for n in names
            ])["OK"]

            def factory(authority, kind=kind):
                if kind == "batched":
                    buffer = HeartbeatBuffer(store, HeartbeatBatching(args.batch_rows, args.flush_ms / 1000,
                                                                      max(args.batch_rows, 20000)))
                    return VMEndpointApp(authority, store, limits, heartbeats=buffer), buffer
                return VMEndpointApp(authority, store, limits), None

            rows.append(send(factory, db, names, kind))
    per = 1000 / args.n
    print(f"SQL statements per 1,000 heartbeats over HTTP (N = {args.n}, HeartbeatBatchRows = {args.batch_rows}, "
          f"MariaDB counters)")
    print(f"  {'':<26}" + "".join(f"{c:>17}" for c in COUNTERS) + f"{'seconds':>10}")
    for row in rows:
        print(f"  {row['label']:<26}" + "".join(f"{row[c] * per:17.0f}" for c in COUNTERS) + f"{row['seconds']:10.2f}")
    old, new = rows
    print(f"  INSERTs: {old['Com_insert'] * per:.0f} -> {new['Com_insert'] * per:.0f} per 1,000 "
          f"(at most ceil(1000/{args.batch_rows}) = {-(-1000 // args.batch_rows)} expected)")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "batch_rows": args.batch_rows, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
