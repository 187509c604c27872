"""Changes that threads of one process make to one row at the same moment, made in one turn.

Threads sharing a VMDB (a SiteDirector's, the VMDirector's) that change one queue's backoff at
once would each read the row, and all but one would find it changed at their write and start
again. Instead each thread leaves its change here; the thread whose turn it is takes every change
left so far and applies them in order with one read and one write, and the others take their own
result from it. Other processes still meet at the database (the writer's compare-and-set).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

Change = TypeVar("Change")
Result = TypeVar("Result")


class _Left(Generic[Change, Result]):
    __slots__ = ("change", "result", "error", "leads", "woken")

    def __init__(self, change: Change):
        self.change = change
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.leads = False  # woken to take the next turn, not with a result
        self.woken = threading.Event()


class RowTurns(Generic[Change, Result]):
    """One thread at a time changes a row (its key), for every thread waiting to change it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._left: dict[Hashable, list[_Left]] = {}
        self._taking_turn: set[Hashable] = set()

    def waiting(self, key: Hashable) -> int:
        """How many changes are left for `key`, waiting for a turn."""
        with self._mutex:
            return len(self._left.get(key, ()))

    def change(self, key: Hashable, change: Change, apply_in_order: Callable[[Sequence[Change]], Sequence[Result]]):
        """The result of `change` when applied with the changes other threads left for `key`.
        `apply_in_order(changes)` applies them in the order given and returns one result each."""
        mine = _Left(change)
        with self._mutex:
            self._left.setdefault(key, []).append(mine)
            mine.leads = key not in self._taking_turn
            self._taking_turn.add(key)
        if not mine.leads:
            mine.woken.wait()
        if mine.leads:
            self._take_turn(key, apply_in_order)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _take_turn(self, key: Hashable, apply_in_order) -> None:
        with self._mutex:
            taken = self._left.pop(key)
        try:
            results = apply_in_order([left.change for left in taken])
            if len(results) != len(taken):
                raise RuntimeError(f"{len(results)} results for {len(taken)} changes")
            for left, result in zip(taken, results):
                left.result = result
        except BaseException as exc:
            for left in taken:
                left.error = exc
        finally:
            with self._mutex:
                # Changes left meanwhile: the first of their threads takes the next turn.
                following = self._left.get(key)
                if following:
                    following[0].leads = True
                    following[0].woken.set()
                else:
                    self._taking_turn.discard(key)
            for left in taken:
                left.leads = False
                left.woken.set()
