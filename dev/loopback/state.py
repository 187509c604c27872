"""What ``up`` started, kept in ``<root>/state.json`` so that ``down`` from any process stops
exactly that: the ports chosen, the component pids, the start-up timings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class State:
    ports: dict[str, int]
    opensearch_port: int
    pids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    extra_databases: list[str] = field(default_factory=list)


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> State | None:
        try:
            return State(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None

    def save(self, state: State) -> None:
        self.path.write_text(json.dumps(asdict(state), indent=1))
