"""What the benchmarks on a private MariaDB share: the server (``private_mariadb``), a database
there as DIRAC's VMDB (``use_vmdb``; both: ``private_vmdb``), pilots seeded into DIRAC's
PilotAgentsDB schema (``insert_pilots``).

Run from the repository root (``benchmarks`` and ``dev`` importable), as the scripts set it up.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def vmdb_cfg(server, database: str) -> str:
    """DIRAC's local configuration of `server`'s `database` as WorkloadManagement/VMDB."""
    return (f"Systems\n{{\n  Databases\n  {{\n    User = {server.user}\n    Password = {server.password}\n"
            f"    Host = {server.host}\n    Port = {server.port}\n  }}\n  WorkloadManagement\n  {{\n"
            f"    Databases\n    {{\n      VMDB\n      {{\n        DBName = {database}\n      }}\n    }}\n  }}\n}}\n")


def use_vmdb(server, database: str) -> str:
    """An empty database `database` on `server` (dev.mariadb.MariaDBServer), from now on the
    VMDB of DIRAC's configuration in this process; its configuration text (vmdb_cfg)."""
    from DIRAC import gConfig
    from diraccfg import CFG

    server.create_database(database)
    text = vmdb_cfg(server, database)
    gConfig.loadCFG(CFG().loadFromBuffer(text))
    return text


@contextmanager
def private_mariadb(prefix: str) -> Iterator[object]:
    """A MariaDB server of its own in a temporary directory (DIRAC's log at ERROR); yields the
    started server (dev.mariadb.MariaDBServer), destroyed when the block ends."""
    from DIRAC import gLogger

    from dev.mariadb import MariaDBServer

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = MariaDBServer(Path(tmp) / "db")
        server.start()
        try:
            gLogger.setLevel("ERROR")
            yield server
        finally:
            server.destroy()


@contextmanager
def private_vmdb(prefix: str, database: str) -> Iterator[object]:
    """private_mariadb with an empty database `database` as DIRAC's VMDB (use_vmdb)."""
    with private_mariadb(prefix) as server:
        use_vmdb(server, database)
        yield server


#: the PilotAgents columns of a seeded pilot, in insert_pilots' order
PILOT_COLUMNS = ("PilotJobReference", "VO", "GridType", "DestinationSite", "GridSite", "Status", "PilotStamp")
#: pilots per INSERT
PILOTS_PER_STATEMENT = 1000


def insert_pilots(mariadb, database: str, pilots: Sequence[tuple], first_id: int | None = None,
                  jobs: bool = False) -> None:
    """Insert `pilots` into PilotAgents of `database`, each a tuple of PILOT_COLUMNS' values,
    submitted an hour ago and last updated a minute ago (the database's clock), 1,000 a
    statement. With `first_id`, their PilotIDs are first_id, first_id + 1, ... (else the table's
    AUTO_INCREMENT) and with `jobs` each has job 1000 + its PilotID (JobToPilotMapping)."""
    if jobs and first_id is None:
        raise ValueError("jobs need the pilots' PilotIDs: give first_id")
    ids = "PilotID, " if first_id is not None else ""
    values = "%s, " if first_id is not None else ""
    for chunk in range(0, len(pilots), PILOTS_PER_STATEMENT):
        part = pilots[chunk:chunk + PILOTS_PER_STATEMENT]
        rows = [((first_id + chunk + i,) if first_id is not None else ()) + tuple(pilot)
                for i, pilot in enumerate(part)]
        mariadb.execute(
            f"INSERT INTO PilotAgents ({ids}PilotJobReference, VO, GridType, DestinationSite, GridSite, Status, "
            "SubmissionTime, LastUpdateTime, PilotStamp) VALUES "
            + ", ".join([f"({values}%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP() - INTERVAL 3600 SECOND, "
                         "UTC_TIMESTAMP() - INTERVAL 60 SECOND, %s)"] * len(rows)),
            database=database, params=tuple(v for row in rows for v in row),
        )
        if jobs:
            mariadb.execute(
                "INSERT INTO JobToPilotMapping (PilotID, JobID, StartTime) VALUES "
                + ", ".join(["(%s, %s, UTC_TIMESTAMP())"] * len(rows)),
                database=database, params=tuple(v for row in rows for v in (row[0], 1000 + row[0])),
            )
