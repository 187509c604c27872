"""Wait until DIRAC's Accounting ReportGenerator reports the expected totals.

The DataStore moves records from its queue into the buckets the reports read once a minute, so
a plot asked too early is empty. Run in the server's environment (host credentials), JSON on
stdin::

    {"start": ISO, "end": ISO, "timeout": seconds,
     "checks": [["VirtualMachine", "TotalVMs", "Site", {"CLOUD.A": 2.0}], ...]}

Each check is a summary report (``TotalVMs``, ``TotalNumberOfJobs``: {group: total}), with an
optional fifth item, the report's conditions (``{"Site": ["CLOUD.A"]}``). It polls until every
group a check names has its total (to 3 decimals) or the deadline passes (exit 1 naming, per
check, what each group had against what was expected). Groups a check does not name are not
its business: the session's AccountingDB is shared (an e2e test's VM, another test's load), so
a caller names groups of its own (tests/accounting's loads tag their sites).
Every poll asks a distinct request (``readinessProbe`` extra argument: this run's own id and the
poll's number), so the ReportGenerator's 10-minute report cache never keeps an early, empty
answer for the real plots, and never answers a poll with another run's: DIRAC 9.1 rounds a
request's start and end to CacheTimeGranularity x 1000 seconds (about 3.5 days) in the cache
key, so two runs' polls asking the same report were one cached answer.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid


def totals(client, check, start, end, attempt: str) -> dict[str, float]:
    type_name, report, grouping, _, *rest = check
    conditions = rest[0] if rest else {}
    extra = {"readinessProbe": attempt}
    result = client.getReport(type_name, report, start, end, conditions, grouping, extra)
    if not result["OK"]:
        raise SystemExit(f"{type_name} {report}: {result['Message']}")
    return {group: round(float(value), 3) for group, value in result["Value"]["data"].items()}


def differences(check, found: dict[str, float]) -> list[str]:
    """'group: saw X, expected Y' for each named group whose total is not the expected one."""
    want = check[3]
    return [
        f"{group}: saw {found.get(group)}, expected {round(float(total), 3)}"
        for group, total in sorted(want.items())
        if found.get(group) != round(float(total), 3)
    ]


def main() -> int:
    import DIRAC

    DIRAC.initialize()
    from DIRAC.AccountingSystem.Client.ReportsClient import ReportsClient

    request = json.load(sys.stdin)
    start, end = dt.datetime.fromisoformat(request["start"]), dt.datetime.fromisoformat(request["end"])
    client = ReportsClient()
    deadline = time.monotonic() + float(request["timeout"])
    run, attempt = uuid.uuid4().hex, 0
    while True:
        attempt += 1
        seen = [totals(client, check, start, end, f"{run}-{attempt}") for check in request["checks"]]
        wrong = [(check, found, differences(check, found)) for check, found in zip(request["checks"], seen)]
        if not any(diff for *_, diff in wrong):
            print(f"accounting complete after {attempt} polls")
            return 0
        if time.monotonic() > deadline:
            print(f"accounting incomplete after {request['timeout']} s ({attempt} polls):", file=sys.stderr)
            for check, found, diff in wrong:
                if diff:
                    print(f"  {check[0]} {check[1]} by {check[2]}: {'; '.join(diff)}", file=sys.stderr)
                    print(f"    (every group seen: {found})", file=sys.stderr)
            return 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
