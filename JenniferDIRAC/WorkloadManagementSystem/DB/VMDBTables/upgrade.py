"""VMDB's schema on connection: refuse a database newer than this code, create the missing
tables, add the missing columns, record the schema version (``VMDBSchema``).

Every step is idempotent, so a v0.1.0 database, a current one, or one an interrupted upgrade
left half-way all end at ``SCHEMA_VERSION``; restarts change nothing more. The version is read
before anything is touched: a database upgraded by a newer JenniferDIRAC is left as it is.
"""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import (
    SCHEMA_VERSION,
    TABLES,
    UNVERSIONED,
    column_upgrade_statements,
    index_upgrade_statements,
)

VERSION_TABLE = "VMDBSchema"


class SchemaUpgrade:
    """Mixed into VMDB (``self`` is a DIRAC DB)."""

    def _initializeTables(self):
        result = self._query("SHOW TABLES")
        if not result["OK"]:
            return result
        existing = {row[0] for row in result["Value"]}
        result = self._schemaVersion(existing)
        if not result["OK"]:
            return result
        found = result["Value"]
        if found is not None and found > SCHEMA_VERSION:
            return S_ERROR(
                f"the VMDB schema is at version {found}, newer than this JenniferDIRAC's {SCHEMA_VERSION}: "
                "upgrade JenniferDIRAC on this host (the database is left untouched)"
            )
        missing = {name: desc for name, desc in TABLES.items() if name not in existing}
        if missing:
            self.log.info("Creating VMDB tables", ", ".join(missing))
            result = self._createTables(missing)
            if not result["OK"]:
                return result
        result = self._upgradeTables()
        if not result["OK"]:
            return result
        if found != SCHEMA_VERSION:
            if found is not None:
                self.log.notice("VMDB schema upgraded", f"version {found} -> {SCHEMA_VERSION}")
            result = self._update(
                f"INSERT IGNORE INTO `{VERSION_TABLE}` (`Version`, `Applied`) VALUES (%s, UTC_TIMESTAMP())",
                args=(SCHEMA_VERSION,),
            )
            if not result["OK"]:
                return result
        return S_OK()

    def _schemaVersion(self, existing: set[str]):
        """S_OK(the database's schema version), S_OK(None) for an empty database."""
        if VERSION_TABLE not in existing:
            return S_OK(UNVERSIONED if existing & set(TABLES) else None)
        result = self._query(f"SELECT MAX(`Version`) FROM `{VERSION_TABLE}`")
        if not result["OK"]:
            return result
        version = result["Value"][0][0] if result["Value"] else None
        return S_OK(UNVERSIONED if version is None else int(version))

    def getSchemaVersion(self):
        """S_OK(the schema version of this database)."""
        result = self._query("SHOW TABLES")
        if not result["OK"]:
            return result
        return self._schemaVersion({row[0] for row in result["Value"]})

    def _upgradeTables(self):
        """Add the columns, then the indexes, an older version's tables lack (idempotent)."""
        for what, catalog, name_column, statements in (
            ("column", "COLUMNS", "COLUMN_NAME", column_upgrade_statements()),
            ("index", "STATISTICS", "INDEX_NAME", index_upgrade_statements()),
        ):
            for table, name, cmd in statements:
                result = self._query(
                    f"SELECT COUNT(*) FROM information_schema.{catalog} "
                    f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND {name_column} = %s",
                    args=(table, name),
                )
                if not result["OK"]:
                    return result
                if int(result["Value"][0][0]):
                    continue
                self.log.notice("Upgrading VMDB", f"adding {what} {table}.{name}")
                result = self._update(cmd)
                if not result["OK"]:
                    return result
        return S_OK()
