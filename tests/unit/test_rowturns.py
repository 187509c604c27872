"""RowTurns: changes that threads leave for one row while another thread has its turn are applied
together, in the order left, and each thread gets its own result."""

import threading

import pytest

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.rowturns import RowTurns
from waiting import wait_until


def test_changes_left_during_a_turn_are_applied_in_one_call_each_with_its_result():
    turns = RowTurns()
    calls, results = [], {}
    first_running, release = threading.Event(), threading.Event()

    def apply_in_order(changes):
        calls.append(list(changes))
        if changes == ["first"]:
            first_running.set()
            assert release.wait(10)
        return [f"done {change}" for change in changes]

    def change(name, key="row"):
        results[name] = turns.change(key, name, apply_in_order)

    threads = [threading.Thread(target=change, args=("first",))]
    threads[0].start()
    assert first_running.wait(10)
    for name in ("second", "third"):
        threads.append(threading.Thread(target=change, args=(name,)))
        threads[-1].start()
        wait_until(lambda: turns.waiting("row") == len(threads) - 1, 10, f"{name} left")
    other = threading.Thread(target=change, args=("elsewhere", "other row"))
    other.start()
    other.join(10)  # another row does not wait for this row's turn
    assert results["elsewhere"] == "done elsewhere"
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == [["first"], ["elsewhere"], ["second", "third"]]
    assert results == {name: f"done {name}" for name in ("first", "second", "third", "elsewhere")}
    assert turns.waiting("row") == 0


def test_an_error_of_a_turn_is_raised_for_every_change_it_took():
    turns = RowTurns()
    first_running, release = threading.Event(), threading.Event()
    raised = []

    def apply_in_order(changes):
        if changes == ["first"]:
            first_running.set()
            assert release.wait(10)
            return ["ok"]
        raise ConnectionError(f"lost {changes}")

    def change(name):
        try:
            turns.change("row", name, apply_in_order)
        except ConnectionError as exc:
            raised.append((name, str(exc)))

    threads = [threading.Thread(target=change, args=("first",))]
    threads[0].start()
    assert first_running.wait(10)
    for name in ("second", "third"):
        threads.append(threading.Thread(target=change, args=(name,)))
        threads[-1].start()
        wait_until(lambda: turns.waiting("row") == len(threads) - 1, 10, f"{name} left")
    release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(raised) == [("second", "lost ['second', 'third']"), ("third", "lost ['second', 'third']")]
    with pytest.raises(RuntimeError, match="0 results for 1 changes"):
        turns.change("row", "fourth", lambda changes: [])
