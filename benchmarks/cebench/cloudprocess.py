"""The benchmark fleet's LocalCloud in a process of its own, as a site's cloud is: what the CE
process holds is then the CE's alone (a measurement of the CE's memory does not count the
cloud's servers, user data and listings).

The CE process drives the cloud through `CloudProcess`: a pipe to the cloud process, where
`FleetHost` runs a `Fleet` (fleet.py) and does, without HTTP, what the benchmark does behind the
CEs' back: seed VMs, stop and delete some, move the cloud's clock. The CEs talk to the cloud over
HTTP as before.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .fleet import CE_KINDS, Fleet, ce_parameters, start_fleet

STOP_TIMEOUT_S = 30


class CloudProcessError(RuntimeError):
    """The cloud process refused a call, or is gone."""


class FleetHost:
    """In the cloud process: the fleet and the operations the CE process may call."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.compute = fleet.cloud.compute

    def settings(self) -> dict:
        cloud = self.fleet.cloud
        return {"base_url": cloud.base_url, "project_name": cloud.credentials.project_name,
                "cloud_auth": str(self.fleet.cloud_auth), "wrapper": str(self.fleet.wrapper)}

    def configure(self, build_seconds: float | None, detail_seconds_per_server: float | None) -> None:
        """Nova's BUILD time and the per-server cost of a detailed listing (None: unchanged)."""
        if build_seconds is not None:
            self.compute.build_seconds = build_seconds
        if detail_seconds_per_server is not None:
            self.compute.detail_seconds_per_server = detail_seconds_per_server

    def seed(self, n: int, seed: int) -> dict[str, dict[str, list[str]]]:
        """N VMs of each kind (fleet.py's seeding); their server ids, per kind and CE."""
        self.fleet.seed(n, seed)
        return {kind: {ce: [vm.server_id for vm in vms] for ce, vms in self.fleet.vms[kind].items()}
                for kind in CE_KINDS}

    def remove_servers(self, server_ids: list[str]) -> None:
        self.fleet.remove_servers(server_ids)

    def ids_named(self, names: list[str]) -> dict[str, str]:
        wanted = set(names)
        return {s.name: s.id for s in list(self.compute.servers.values()) if s.name in wanted}

    def active(self, server_ids: list[str]) -> list[str]:
        """Those of `server_ids` that are ACTIVE and not being deleted."""
        servers = self.compute.servers
        return [sid for sid in server_ids
                if sid in servers and servers[sid].status == "ACTIVE" and servers[sid].delete_at is None]

    def power_off(self, server_ids: list[str], over_s: float) -> float:
        """The VMs power off (SHUTOFF) one after another over `over_s` seconds of the cloud's
        clock; how far that clock is ahead of the real one."""
        for server_id in server_ids:
            self.fleet.cloud.clock.advance(over_s / max(1, len(server_ids)))
            self.compute.set_state(server_id, "SHUTOFF")
        return self.clock_offset()

    def delete(self, server_ids: list[str], forget_ids: list[str]) -> None:
        """Delete the VMs not yet being deleted (a CE may have), finish every deletion, and let
        the cloud forget the servers `forget_ids` (no longer listed by changes-since, as Nova's
        archiving does: else the cloud grows by itself)."""
        for server_id in server_ids:
            server = self.compute.servers.get(server_id)
            if server is not None and server.delete_at is None:
                self.compute.delete_server(None, server_id)
        self.compute.finish_deletions()
        for server_id in forget_ids:
            self.compute.deleted.pop(server_id, None)

    def traced_mib(self) -> float | None:
        """The cloud process's memory tracemalloc traces (after gc.collect()), None untraced."""
        if not tracemalloc.is_tracing():
            return None
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / (1024 * 1024)

    def advance(self, seconds: float) -> float:
        self.fleet.cloud.clock.advance(seconds)
        return self.clock_offset()

    def clock_offset(self) -> float:
        """Seconds the cloud's clock is ahead of the real one."""
        return self.fleet.cloud.clock.now() - time.time()


def _serve(connection, latency_s: float, workdir: str, token_ttl: float, trace: bool) -> None:
    """The cloud process: start the fleet (traced by tracemalloc if `trace`), then answer calls
    until told to stop."""
    if trace:
        tracemalloc.start()
    fleet = start_fleet(latency_s, workdir, token_ttl=token_ttl)
    host = FleetHost(fleet)
    try:
        while True:
            method, args = connection.recv()
            if method is None:  # CloudProcess.stop
                break
            try:
                connection.send((True, getattr(host, method)(*args)))
            except Exception as exc:  # the caller raises it; the cloud keeps serving
                connection.send((False, f"{method}: {type(exc).__name__}: {exc}"))
    finally:
        fleet.cloud.stop()
        connection.send((True, None))


class CloudProcess:
    """In the CE process: the cloud process and the calls it answers (FleetHost's methods)."""

    def __init__(self, latency_s: float, workdir: Path, token_ttl: float, trace: bool = False) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: none of the CE's state
        self._connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, latency_s, str(workdir), token_ttl, trace),
                                       name="localcloud", daemon=True)
        self.process.start()
        child.close()
        #: seconds the cloud's clock is ahead of the real one (power_off and advance tell)
        self.clock_offset_s = 0.0
        settings = self.call("settings")
        self.base_url, self.project_name = settings["base_url"], settings["project_name"]
        self.cloud_auth, self.wrapper = Path(settings["cloud_auth"]), Path(settings["wrapper"])

    def call(self, method: str, *args):
        if method.startswith("_") or not callable(getattr(FleetHost, method, None)):
            raise CloudProcessError(f"the cloud process has no call {method!r}")
        try:
            self._connection.send((method, args))
            ok, value = self._connection.recv()
        except (EOFError, OSError) as exc:
            raise CloudProcessError(f"the cloud process is gone (exit {self.process.exitcode}): {exc}") \
                from None
        if not ok:
            raise CloudProcessError(value)
        return value

    def ce_parameters(self, kind: str, ce_name: str) -> dict[str, str]:
        return ce_parameters(kind, self.base_url, self.project_name, self.cloud_auth)

    def utcnow(self) -> datetime:
        """The cloud's time (the clock a site's CE and cloud share)."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.clock_offset_s)

    def stop(self) -> None:
        try:
            self._connection.send((None, ()))
            if self._connection.poll(STOP_TIMEOUT_S):
                self._connection.recv()
        except (EOFError, OSError):
            pass
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_TIMEOUT_S)
        self._connection.close()
