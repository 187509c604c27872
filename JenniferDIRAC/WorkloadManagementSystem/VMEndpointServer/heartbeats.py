"""Heartbeats accepted by the endpoint, written to VMDB in batches.

One heartbeat per VM every few minutes is the endpoint's bulk traffic: at 5,000 VMs, one
INSERT each was thousands of statements per cycle. Accepted heartbeats go into a bounded
in-memory buffer; a writer thread writes them as one batch (``VMRecordStore.add_heartbeats``:
one multi-row INSERT) when ``batch_rows`` are waiting or ``flush_seconds`` after the oldest
arrived, and on close().

When the buffer is full (the database has been slow or down for a while) a new heartbeat is
refused (``BufferFull``: the endpoint answers 503 and the VM retries), rather than the oldest
dropped: a 204 tells the VM its heartbeat is recorded, and dropping an accepted one would make
that a lie, while a VM retries a 503 anyway. A batch the store refuses stays in the buffer and
is written at the next flush; only what is still unwritten when close() gives up is lost, and
that is logged with its count.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .store import StoreError

Log = Callable[[str, str], None]


class BufferFull(Exception):
    """No room for another heartbeat: the caller answers 503."""


@dataclass(frozen=True)
class HeartbeatBatching:
    batch_rows: int = 200
    flush_seconds: float = 1.0
    max_buffered: int = 20000

    def __post_init__(self):
        if self.batch_rows < 1:
            raise ValueError(f"option HeartbeatBatchRows: {self.batch_rows} is below the minimum 1")
        if not self.flush_seconds > 0:
            raise ValueError(f"option HeartbeatFlushMilliseconds: {self.flush_seconds * 1000:g} is not positive")
        if self.max_buffered < self.batch_rows:
            raise ValueError(
                f"option HeartbeatBufferRows: {self.max_buffered} is below HeartbeatBatchRows ({self.batch_rows})"
            )


class HeartbeatBuffer:
    """add() from any thread (never blocks on the database); one writer thread flushes."""

    def __init__(self, store, batching: HeartbeatBatching | None = None, log: Log | None = None,
                 retry_seconds: float = 5.0):
        self.store = store
        self.batching = batching or HeartbeatBatching()
        self.log = log or (lambda level, message: None)
        self.retry_seconds = retry_seconds
        self.flushes = 0  # batches written
        self.refused = 0  # heartbeats refused because the buffer was full
        self._rows: deque[tuple[float, tuple[str, dt.datetime, str]]] = deque()  # (arrival, row)
        # heartbeats waiting per VM (only VMs with one or more: never more keys than _rows)
        self._waiting: dict[str, int] = {}
        self._condition = threading.Condition()
        self._write_lock = threading.Lock()  # one batch at a time, in arrival order
        self._closing = False
        self._failing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="VMEndpoint-heartbeats", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        with self._condition:
            return len(self._rows)

    def add(self, vm_name: str, when: dt.datetime, load: str) -> None:
        with self._condition:
            if self._closing:
                raise BufferFull("the endpoint is stopping")
            if len(self._rows) >= self.batching.max_buffered:
                self.refused += 1
                raise BufferFull(f"{len(self._rows)} heartbeats are waiting for the database")
            self._rows.append((time.monotonic(), (vm_name, when, load)))
            self._waiting[vm_name] = self._waiting.get(vm_name, 0) + 1
            if len(self._rows) == 1 or len(self._rows) >= self.batching.batch_rows:
                self._condition.notify()  # the writer's deadline starts, or its batch is full

    def holds(self, vm_name: str) -> bool:
        """Whether a heartbeat of this VM is waiting to be written."""
        with self._condition:
            return vm_name in self._waiting

    def flush(self) -> bool:
        """Write everything buffered now, batch by batch; False if the store refused a batch
        (its rows stay buffered)."""
        while True:
            if not self._write_one_batch():
                return False
            with self._condition:
                if not self._rows:
                    return True

    def close(self, timeout: float = 30.0) -> int:
        """Stop taking heartbeats, write what is buffered (retrying for up to `timeout` s);
        returns how many could not be written (logged)."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join(timeout=timeout)
        deadline = time.monotonic() + timeout
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(min(self.retry_seconds, max(0.0, deadline - time.monotonic())))
        lost = len(self)
        if lost:
            self.log("error", f"{lost} heartbeats not written at shutdown: the database did not take them")
        return lost

    # --- the writer thread -----------------------------------------------------------------------
    def _due(self) -> float | None:
        """Seconds until the next flush is due (0: now); None when nothing is buffered."""
        if not self._rows:
            return None
        now = time.monotonic()
        if self._failing_since is not None and now < self._failing_since + self.retry_seconds:
            return self._failing_since + self.retry_seconds - now
        if len(self._rows) >= self.batching.batch_rows:
            return 0.0
        return max(0.0, self._rows[0][0] + self.batching.flush_seconds - now)

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._closing:
                        return  # close() writes the rest in its own thread
                    due = self._due()
                    if due is not None and due <= 0.0:
                        break
                    self._condition.wait(timeout=due)
            self._write_one_batch()

    def _write_one_batch(self) -> bool:
        with self._write_lock:
            with self._condition:
                batch = [self._rows[i][1] for i in range(min(len(self._rows), self.batching.batch_rows))]
            if not batch:
                return True
            try:
                self.store.add_heartbeats(batch)
            except StoreError as exc:
                with self._condition:
                    if self._failing_since is None:
                        self.log("error", f"heartbeats not written, kept for a retry ({len(self._rows)} waiting): {exc}")
                    self._failing_since = time.monotonic()
                return False
            except Exception as exc:  # noqa: BLE001 - the writer thread must survive anything
                with self._condition:
                    self._failing_since = time.monotonic()
                self.log("error", f"heartbeats not written ({type(exc).__name__}), kept for a retry")
                return False
            with self._condition:
                for _ in batch:
                    _, (vm_name, _, _) = self._rows.popleft()
                    left = self._waiting.pop(vm_name) - 1
                    if left:
                        self._waiting[vm_name] = left
                if self._failing_since is not None:
                    self.log("info", "heartbeats written again")
                self._failing_since = None
                self.flushes += 1
            return True
