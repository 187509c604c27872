"""VMDB's multi-statement writes are one transaction each (VMRecords._transaction): on a real
MariaDB, a statement that fails rolls back the ones before it, and so does a block that raises."""

from __future__ import annotations

import pytest

from test_vmdb import ok, record

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import CHUNK

SET_REASON = "UPDATE VMs SET `DeleteReason` = %s WHERE `VMName` = %s"


def reasons(db, names) -> dict[str, str]:
    return {vm["vm_name"]: vm["delete_reason"] for vm in ok(db.getVMs(names=names))}


def test_a_failing_statement_rolls_back_the_ones_before_it(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("jdirac-a"), record("jdirac-b")]))
    result = db._statementsInTransaction(
        [(SET_REASON, ["first", "jdirac-a"]), ("UPDATE NoSuchTable SET x = 1", [])]
    )
    assert not result["OK"]
    assert reasons(db, ["jdirac-a"]) == {"jdirac-a": ""}

    both = [(SET_REASON, ["first", "jdirac-a"]), (SET_REASON, ["second", "jdirac-b"])]
    ok(db._statementsInTransaction(both))
    assert reasons(db, ["jdirac-a", "jdirac-b"]) == {"jdirac-a": "first", "jdirac-b": "second"}


def test_a_failing_chunk_rolls_back_the_chunks_before_it(vmdb):
    db = vmdb.db
    names = [f"jdirac-tx{i:028x}" for i in range(CHUNK + 1)]
    ok(db.recordVMs([record(name) for name in names]))
    rows = [("kept?", name) for name in names[:CHUNK]] + [("too few values",)]  # the 2nd chunk fails
    assert not db._manyInTransaction(SET_REASON, rows)["OK"]
    assert set(reasons(db, names).values()) == {""}

    ok(db._manyInTransaction(SET_REASON, [("written", name) for name in names]))
    assert set(reasons(db, names).values()) == {"written"}


def test_a_block_that_raises_rolls_back(vmdb):
    db = vmdb.db
    ok(db.recordVMs([record("jdirac-a")]))
    with pytest.raises(RuntimeError):
        with db._transaction() as tx:
            assert tx.error is None
            ok(db._update(SET_REASON, args=["lost", "jdirac-a"], conn=tx.conn))
            raise RuntimeError("after the first statement")
    assert reasons(db, ["jdirac-a"]) == {"jdirac-a": ""}
