"""Where pilot records are read and written: PilotAgentsDB directly where it is configured on
this host, the PilotManager service otherwise (the VMDirector and the admin commands alike).

Both answer the same calls the same way (``selectPilots``, ``getPilotInfo``, ``setPilotStatus``).
``pilot_rows`` reads what the VMDirector needs of a CE's pilots: from PilotAgentsDB in one
statement of our own (DIRAC's getPilotInfo escapes each reference with a call of its own: 0.4 s
of a 1 s cycle at 1,250 pilots per CE), from the service with its two calls; as tuples cheap to
compare with the last cycle's (Director/pilotrecords.py keeps what it made of them).
DIRAC's ``ServerUtils.getPilotAgentsDB`` is not used: it falls back to the service when the
configured database cannot be reached, hiding the outage this choice must report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from DIRAC import S_OK
from DIRAC.Core.Utilities.DErrno import EWMSNOPILOT, cmpError

PILOTAGENTSDB = "WorkloadManagement/PilotAgentsDB"
PILOTMANAGER = "WorkloadManagement/PilotManager"


@dataclass(frozen=True)
class PilotStore:
    """The pilot records' database or service (``store``), and its name for errors."""

    store: object
    name: str


def pilot_store() -> PilotStore:
    """PilotAgentsDB where configured on this host (DIRAC's DB raises RuntimeError when it cannot
    connect), the PilotManager service otherwise."""
    from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters

    if getDBParameters(PILOTAGENTSDB)["OK"]:
        from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

        return PilotStore(PilotAgentsDB(), PILOTAGENTSDB)
    from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

    return PilotStore(PilotManagerClient(), f"the {PILOTMANAGER} service")


def pilot_info(store, references: list[str]):
    """``store.getPilotInfo(references)``: S_OK({reference: info}), S_OK({}) when none of them is
    known (DIRAC answers that with the error EWMSNOPILOT)."""
    result = store.getPilotInfo(references)
    if not result["OK"] and cmpError(result, EWMSNOPILOT):
        return S_OK({})
    return result


#: references per statement (a CE's VMs; MariaDB's packet holds far more)
REFERENCES_PER_STATEMENT = 5000
# The times as the server writes them (text): MySQLdb's Python converter of a DATETIME, run for
# every row (2,500 per CE), cost more than the rest of the read; a caller converts the rows it
# has not seen unchanged (pilot_time)
_PILOT_COLUMNS = (
    "SELECT p.PilotJobReference, p.Status, CAST(p.LastUpdateTime AS CHAR), CAST(p.SubmissionTime AS CHAR), "
    "MAX(m.JobID) FROM PilotAgents p LEFT JOIN JobToPilotMapping m ON m.PilotID = p.PilotID "
)
_PILOT_GROUP = " GROUP BY p.PilotID, p.PilotJobReference, p.Status, p.LastUpdateTime, p.SubmissionTime"

#: references of these characters only (every cloud:// reference) are written into the
#: statement quoted as they are: none needs escaping in a string literal, none is a % of the
#: statement's formatting; MySQLdb escaped each of a CE's 1,250 with a Python call per cycle.
#: A chunk with any other character is sent as arguments.
_PLAIN_REFERENCES = re.compile(r"[A-Za-z0-9._:/-]*")
_QUOTED_SEPARATOR = "', '"

#: one pilot as pilot_rows gives it: (reference, status, last update, submission, newest job id
#: or 0), its times as pilot_time reads them
PilotRow = tuple


def _is_database(store) -> bool:
    from DIRAC.Core.Base.DB import DB

    return isinstance(store, DB)


def pilot_time(value) -> datetime | None:
    """A PilotRow's time as a naive datetime: the database's text read as MySQLdb reads a
    DATETIME (None for NULL or a zero date), the service's datetime as it is."""
    if value is None or isinstance(value, datetime):
        return value
    if len(value) == 19:  # "YYYY-MM-DD HH:MM:SS", the server's text of a DATETIME: read in C
        try:
            return datetime.fromisoformat(value)
        except ValueError:  # a zero date: MySQLdb's reader says None
            pass
    from MySQLdb.times import DateTime_or_None

    return DateTime_or_None(value)


def pilot_rows(store, site: str, statuses: list[str], references):
    """S_OK([PilotRow]), one row per reference, of `references` and of every pilot sent to
    `site` (DestinationSite) whose status is one of `statuses`: what DIRAC's selectPilots +
    getPilotInfo read, the newest of a pilot's jobs as its job id. The rows are as cheap to
    compare as to make: a reader keeps what it made of a row and makes it again only for a row
    that changed."""
    if not _is_database(store):
        return _pilot_rows_by_calls(store, site, statuses, references)
    references = sorted(set(references))
    chunks = [references[i:i + REFERENCES_PER_STATEMENT]
              for i in range(0, len(references), REFERENCES_PER_STATEMENT)] or [[]]
    rows: dict[str, PilotRow] = {}
    for index, chunk in enumerate(chunks):
        parts, args = [], []
        if chunk and _PLAIN_REFERENCES.fullmatch("".join(chunk)):  # one C call for the 1,250
            parts.append(f"{_PILOT_COLUMNS}WHERE p.PilotJobReference IN ('{_QUOTED_SEPARATOR.join(chunk)}')"
                         f"{_PILOT_GROUP}")
        elif chunk:
            parts.append(f"{_PILOT_COLUMNS}WHERE p.PilotJobReference IN ({', '.join(['%s'] * len(chunk))})"
                         f"{_PILOT_GROUP}")
            args += chunk
        if index == 0 and statuses:
            parts.append(f"{_PILOT_COLUMNS}WHERE p.DestinationSite = %s AND p.Status IN "
                         f"({', '.join(['%s'] * len(statuses))}){_PILOT_GROUP}")
            args += [site, *statuses]
        if not parts:
            continue
        # logArgs: DIRAC's debug line of the statement (formatted even when not logged) without
        # the 1,250 references written into it
        result = store._query(" UNION ".join(parts), args=args, logArgs=())
        if not result["OK"]:
            return result
        for row in result["Value"]:
            rows[row[0]] = row if row[4] is not None else (*row[:4], 0)
    return S_OK(list(rows.values()))


def _pilot_rows_by_calls(store, site: str, statuses: list[str], references):
    """pilot_rows from DIRAC's calls: selectPilots, then getPilotInfo (the PilotManager service's
    path; on PilotAgentsDB, what the one statement must read the same)."""
    result = store.selectPilots({"DestinationSite": site, "Status": sorted(statuses)})
    if not result["OK"]:
        return result
    wanted = sorted(set(references) | set(result["Value"]))
    if not wanted:
        return S_OK([])
    result = pilot_info(store, wanted)
    if not result["OK"]:
        return result
    rows = []
    for reference, info in result["Value"].items():
        jobs = info.get("Jobs") or []
        rows.append((reference, info["Status"], info.get("LastUpdateTime"), info.get("SubmissionTime"),
                     max(jobs) if jobs else 0))
    return S_OK(rows)
