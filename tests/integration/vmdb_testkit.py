"""What the VMDB upgrade tests share: a database made by v0.1.0's schema, and the current
release's VMDB on a database named in gConfig."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from JenniferDIRAC.WorkloadManagementSystem.DB import VMDB as vmdb_module

V010_SCHEMA = Path(__file__).resolve().parent / "fixtures" / "vmdb_v0.1.0.sql"


@contextmanager
def v010_database(mariadb) -> Iterator[str]:
    """A database of its own (its name yielded) made by v0.1.0's VMDB schema, empty; dropped
    when the block ends."""
    name = "VMDB_v010_" + uuid.uuid4().hex[:10]
    mariadb.create_database(name, V010_SCHEMA)
    try:
        yield name
    finally:
        mariadb.drop_database(name)


def vmdb_on(mariadb, name: str):
    """A VMDB object of the current release on database ``name`` (configured in gConfig): its
    first connection upgrades the database."""
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(CFG().loadFromBuffer(
        "Systems\n{\n  Databases\n  {\n"
        f"    User = {mariadb.user}\n    Password = {mariadb.password}\n"
        f"    Host = {mariadb.host}\n    Port = {mariadb.port}\n  }}\n"
        "  WorkloadManagement\n  {\n    Databases\n    {\n      VMDB\n      {\n"
        f"        DBName = {name}\n      }}\n    }}\n  }}\n}}\n"
    ))
    return vmdb_module.VMDB()
