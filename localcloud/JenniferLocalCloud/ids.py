"""Identifiers: deterministic for a given seed, so a seeded cloud replays the same ids."""

from __future__ import annotations

import random
import threading
import uuid


class IdFactory:
    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def uuid(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex(self) -> str:
        with self._lock:
            return uuid.UUID(int=self._rng.getrandbits(128), version=4).hex

    def mac(self) -> str:
        with self._lock:
            tail = [self._rng.randrange(256) for _ in range(3)]
        return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)
