"""RowTurns: changes that threads leave for one row while another thread has its turn are applied
together, in the order left, and each thread gets its own result."""

import threading

import pytest

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.rowturns import RowTurns
from waiting import wait_until


def hold_a_turn(turns, apply_in_order, change, names=("second", "third")):
    """Start a thread whose change "first" takes the row's turn and keeps it until released, then
    threads for `names`, each once the ones before have left their change. Returns the threads."""
    threads = [threading.Thread(target=change, args=("first",))]
    threads[0].start()
    assert apply_in_order.first_running.wait(10)
    for name in names:
        threads.append(threading.Thread(target=change, args=(name,)))
        threads[-1].start()
        wait_until(lambda: turns.waiting("row") == len(threads) - 1, 10, f"{name} left")
    return threads


class Applier:
    """apply_in_order: holds the turn of "first" until released, then `results(changes)`."""

    def __init__(self, results):
        self.results = results
        self.calls = []
        self.first_running, self.release = threading.Event(), threading.Event()

    def __call__(self, changes):
        self.calls.append(list(changes))
        if changes == ["first"]:
            self.first_running.set()
            assert self.release.wait(10)
            return ["done first"]
        return self.results(changes)


def test_changes_left_during_a_turn_are_applied_in_one_call_each_with_its_result():
    turns, results = RowTurns(), {}
    apply_in_order = Applier(lambda changes: [f"done {change}" for change in changes])

    def change(name, key="row"):
        results[name] = turns.change(key, name, apply_in_order)

    threads = hold_a_turn(turns, apply_in_order, change)
    other = threading.Thread(target=change, args=("elsewhere", "other row"))
    other.start()
    other.join(10)  # another row does not wait for this row's turn
    assert results["elsewhere"] == "done elsewhere"
    apply_in_order.release.set()
    for thread in threads:
        thread.join(10)
    assert apply_in_order.calls == [["first"], ["elsewhere"], ["second", "third"]]
    assert results == {name: f"done {name}" for name in ("first", "second", "third", "elsewhere")}
    assert turns.waiting("row") == 0


def test_an_error_of_a_turn_is_raised_for_every_change_it_took():
    turns, raised = RowTurns(), []

    def lost(changes):
        raise ConnectionError(f"lost {changes}")

    apply_in_order = Applier(lost)

    def change(name):
        try:
            turns.change("row", name, apply_in_order)
        except ConnectionError as exc:
            raised.append((name, str(exc)))

    threads = hold_a_turn(turns, apply_in_order, change)
    apply_in_order.release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(raised) == [("second", "lost ['second', 'third']"), ("third", "lost ['second', 'third']")]
    with pytest.raises(RuntimeError, match="0 results for 1 changes"):
        turns.change("row", "fourth", lambda changes: [])
