"""VMDB backoff writes decided on the row this process last read or wrote: one statement each,
and still right when another process changed the row since (the compare-and-set sends it back to
a read)."""

import datetime as dt

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


def statements(db, kind: str) -> int:
    """How many statements of `kind` (select, update, insert, delete) this thread's connection ran."""
    ((_, value),) = ok(db._query("SHOW SESSION STATUS LIKE %s", args=(f"Com_{kind}",)))
    return int(value)


def counted(db, call):
    """`call()`'s result and the SELECTs and UPDATEs it sent on this thread's connection."""
    before = statements(db, "select"), statements(db, "update")
    baseline = statements(db, "select"), statements(db, "update")  # what reading the counters adds
    result = call()
    after = statements(db, "select"), statements(db, "update")
    return result, tuple(a - b - (b - p) for a, b, p in zip(after, baseline, before))


def test_repeated_set_backoff_from_one_process_is_one_update_each(vmdb):
    db = vmdb.db
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    ok(db.setBackoff("one-ce", "p", until, "first"))

    row, (selects, updates) = counted(db, lambda: ok(db.setBackoff("one-ce", "p", until, "second")))

    assert (selects, updates) == (0, 1)
    assert row == ok(db.getBackoff("one-ce", "p"))
    assert (row["failures"], row["reason"]) == (2, "second")


def test_a_row_changed_by_another_process_is_read_again_before_deciding(vmdb):
    mine, other = vmdb.db, VMDB()
    ended = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    ok(mine.setBackoff("shared-ce", "", ended, "mine"))

    assert ok(other.claimProbe("shared-ce", "", "vm-other")) is True
    # This process last wrote the row without a probe: its claim would win on that row.
    assert ok(mine.claimProbe("shared-ce", "", "vm-mine")) is False
    assert ok(mine.getBackoff("shared-ce"))["probe_vm"] == "vm-other"

    ok(other.setBackoff("shared-ce", "", ended, "other"))
    row = ok(mine.setBackoff("shared-ce", "", ended, "mine again"))
    assert row["failures"] == 3  # the other process's failure is not lost
    assert row == ok(other.getBackoff("shared-ce"))


def test_a_row_removed_by_another_process_is_not_written_back(vmdb):
    mine, other = vmdb.db, VMDB()
    ended = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    ok(mine.setBackoff("gone-ce", "", ended, "x"))
    assert ok(other.clearBackoff("gone-ce")) == 1

    assert ok(mine.claimProbe("gone-ce", "", "vm-mine")) is False  # no backoff: no probe needed
    assert ok(mine.getBackoff("gone-ce")) is None
    assert ok(mine.releaseProbe("gone-ce")) == 0
    assert ok(mine.getBackoff("gone-ce")) is None


def test_a_row_inserted_by_another_process_after_this_one_cleared_it_keeps_its_failures(vmdb):
    mine, other = vmdb.db, VMDB()
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    ok(mine.setBackoff("back-ce", "", until, "x"))
    assert ok(mine.clearBackoff("back-ce")) == 1
    ok(other.setBackoff("back-ce", "", until, "other"))

    row = ok(mine.setBackoff("back-ce", "", until, "mine"))
    assert row["failures"] == 2
    assert row == ok(other.getBackoff("back-ce"))
