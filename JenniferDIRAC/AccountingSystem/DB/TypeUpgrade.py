"""Add the keys and values a newer VirtualMachine type has to an AccountingDB made by v0.1.0.

DIRAC's AccountingDB never changes a registered type: when the definition has new fields the
DataStore logs "Definition fields have changed" and refuses every record of the new shape. This
adds the new columns in place (records already there get ``Unknown`` for a new key, 0 for a new
value), extends the buckets' unique index with the new keys and updates the type catalog, so the
old records stay in every plot. Idempotent. Restart the DataStore and the ReportGenerator
afterwards (they read the catalog at start).
"""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.AccountingSystem.Client.Types.VirtualMachine import (
    ADDED_KEY_FIELDS,
    ADDED_VALUE_FIELDS,
    VirtualMachine,
)

TYPE_NAME = "VirtualMachine"
#: DIRAC's column type of values in the bucket table (AccountingDB.registerType)
BUCKET_VALUE_SQL = "DECIMAL(30,10)"


def _columns(db, table: str) -> set[str]:
    result = db._query(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        args=(table,),
    )
    if not result["OK"]:
        raise RuntimeError(result["Message"])
    return {row[0] for row in result["Value"]}


def _do(db, sql: str, args=None) -> None:
    result = db._update(sql, args=args) if args is not None else db._update(sql)
    if not result["OK"]:
        raise RuntimeError(f"{sql}: {result['Message']}")


def _unknown_id(db, key: str, sql_type: str) -> int:
    table = f"ac_key_{TYPE_NAME}_{key}"
    _do(
        db,
        f"CREATE TABLE IF NOT EXISTS `{table}` (`id` INTEGER NOT NULL AUTO_INCREMENT, "
        f"`value` {sql_type} NOT NULL, PRIMARY KEY (`id`), UNIQUE INDEX `valueindex` (`value`))",
    )
    _do(db, f"INSERT IGNORE INTO `{table}` (`value`) VALUES (%s)", ("Unknown",))
    result = db._query(f"SELECT `id` FROM `{table}` WHERE `value` = %s", args=("Unknown",))
    if not result["OK"] or not result["Value"]:
        raise RuntimeError(f"no id for Unknown in {table}: {result.get('Message', '')}")
    return int(result["Value"][0][0])


def upgrade_type(db) -> dict:
    """Upgrade the VirtualMachine tables of ``db`` (a DIRAC DB on the AccountingDB);
    S_OK({"added": [columns added]}), S_OK with nothing added if already current or the type
    was never registered (the DataStore then creates it whole)."""
    try:
        catalog = db._query(
            "SELECT `keyFields`, `valueFields` FROM `ac_catalog_Types` WHERE `name` = %s", args=(TYPE_NAME,)
        )
        if not catalog["OK"]:
            return catalog
        if not catalog["Value"]:
            return S_OK({"added": []})
        definition = VirtualMachine()
        keys = [name for name, _ in definition.definitionKeyFields]
        values = [name for name, _ in definition.definitionAccountingFields]
        type_table, bucket_table, in_table = (f"ac_{kind}_{TYPE_NAME}" for kind in ("type", "bucket", "in"))
        added = []
        for (key, sql_type), _default in ADDED_KEY_FIELDS:
            if key in _columns(db, type_table):
                continue
            unknown = _unknown_id(db, key, sql_type)
            _do(db, f"ALTER TABLE `{type_table}` ADD COLUMN `{key}` INTEGER NOT NULL DEFAULT {unknown}")
            _do(db, f"ALTER TABLE `{bucket_table}` ADD COLUMN `{key}` INTEGER NOT NULL DEFAULT {unknown}")
            _do(db, f"ALTER TABLE `{in_table}` ADD COLUMN `{key}` {sql_type} NOT NULL DEFAULT 'Unknown'")
            added.append(key)
        if added:
            # A bucket is unique per start time, key values and length: the new keys belong in it.
            unique = ", ".join(f"`{name}`" for name in ["startTime", *keys, "bucketLength"])
            _do(
                db,
                f"ALTER TABLE `{bucket_table}` DROP INDEX `UniqueConstraint`, ADD UNIQUE INDEX `UniqueConstraint` ({unique})",
            )
        for (value, sql_type), default in ADDED_VALUE_FIELDS:
            if value in _columns(db, type_table):
                continue
            _do(db, f"ALTER TABLE `{type_table}` ADD COLUMN `{value}` {sql_type} NOT NULL DEFAULT {default}")
            _do(
                db,
                f"ALTER TABLE `{bucket_table}` ADD COLUMN `{value}` {BUCKET_VALUE_SQL} NOT NULL DEFAULT {default}",
            )
            _do(db, f"ALTER TABLE `{in_table}` ADD COLUMN `{value}` {sql_type} NOT NULL DEFAULT {default}")
            added.append(value)
        _do(
            db,
            "UPDATE `ac_catalog_Types` SET `keyFields` = %s, `valueFields` = %s WHERE `name` = %s",
            (",".join(keys), ",".join(values), TYPE_NAME),
        )
    except RuntimeError as exc:
        return S_ERROR(f"upgrading the {TYPE_NAME} accounting type: {exc}")
    return S_OK({"added": added})
