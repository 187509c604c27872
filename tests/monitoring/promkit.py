"""A real Prometheus server (Debian's package) on loopback for tests: its own config, port and
storage; queried through its HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from waiting import wait_until

PROMETHEUS = "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    def __init__(self, root: Path, targets: dict[str, str], interval: str = "1s"):
        self.root, self.port = root, free_port()
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            for job, target in targets.items()
        )
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "prometheus.yml"
        self.config.write_text(
            f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n{jobs}"
        )
        self.log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_for(lambda: self._get("/-/ready") is not None, 60, "Prometheus ready")

    def _get(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.read()
        except OSError:
            return None

    def query(self, promql: str) -> dict[tuple, float]:
        """{sorted label items: value} of an instant vector (or {(): value} of a scalar)."""
        body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        if body is None:
            return {}
        data = json.loads(body)["data"]
        if data["resultType"] == "scalar":
            return {(): float(data["result"][1])}
        return {
            tuple(sorted((k, v) for k, v in item["metric"].items() if k not in ("instance", "job"))): float(
                item["value"][1]
            )
            for item in data["result"]
        }

    def value(self, promql: str) -> float | None:
        """The one value of `promql` (None when there is no sample yet)."""
        result = self.query(promql)
        return next(iter(result.values())) if len(result) == 1 else None

    def targets_up(self) -> dict[str, float]:
        return {
            dict(k)["__name__"] if "__name__" in dict(k) else str(k): v for k, v in self.query("up").items()
        }

    wait_for = staticmethod(wait_until)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
