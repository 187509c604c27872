"""Wait until DIRAC's Accounting ReportGenerator reports the expected totals.

The DataStore moves records from its queue into the buckets the reports read once a minute, so
a plot asked too early is empty. Run in the server's environment (host credentials), JSON on
stdin::

    {"start": ISO, "end": ISO, "timeout": seconds,
     "checks": [["VirtualMachine", "TotalVMs", "Site", {"CLOUD.A": 2.0}], ...]}

Each check is a summary report (``TotalVMs``, ``TotalNumberOfJobs``: {group: total}); polls
until every named group's total matches (other groups are ignored) (to 3 decimals) or the deadline passes (exit 1 with what was seen).
Every poll asks a distinct request (``readinessProbe`` extra argument), so the ReportGenerator's
10-minute report cache never keeps an early, empty answer for the real plots.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time


def totals(client, type_name, report, grouping, start, end, attempt):
    result = client.getReport(type_name, report, start, end, {}, grouping, {"readinessProbe": attempt})
    if not result["OK"]:
        raise SystemExit(f"{type_name} {report}: {result['Message']}")
    return {group: round(float(value), 3) for group, value in result["Value"]["data"].items()}


def main() -> int:
    import DIRAC

    DIRAC.initialize()
    from DIRAC.AccountingSystem.Client.ReportsClient import ReportsClient

    request = json.load(sys.stdin)
    start, end = dt.datetime.fromisoformat(request["start"]), dt.datetime.fromisoformat(request["end"])
    client = ReportsClient()
    deadline = time.monotonic() + float(request["timeout"])
    attempt, seen = 0, []
    while True:
        attempt += 1
        seen = [totals(client, t, r, g, start, end, attempt) for t, r, g, _ in request["checks"]]
        # only the groups a check names: the session's other records (an e2e test's VM on the
        # loopback site) share the AccountingDB and are not this check's business
        if all(
            {k: found.get(k) for k in want} == {k: round(v, 3) for k, v in want.items()}
            for found, (*_, want) in zip(seen, request["checks"])
        ):
            print(f"accounting complete after {attempt} polls")
            return 0
        if time.monotonic() > deadline:
            print(f"accounting incomplete after {request['timeout']} s: {seen}", file=sys.stderr)
            return 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
