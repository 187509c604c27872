"""Nova state: servers with their lifecycle, over the flavors, keypairs and quotas of
compute_catalog.py and the records of compute_model.py.

Servers move BUILD -> ACTIVE when their build delay has passed on the cloud clock (checked
whenever they are observed, and by the cloud's ticker), ACTIVE -> SHUTOFF when their boot
process exits, and to ERROR with a ``fault`` when a fault says so. A DELETE, as in Nova, only
starts the deletion: the server stays listed (and counted in the quota usage) with
``task_state = deleting`` for ``delete_seconds``, a second DELETE is accepted, and then it is
gone (shown as DELETED by ``changes-since``); :meth:`ComputeState.finish_deletions` ends the
pending ones at once. Tests drive servers
directly with :meth:`ComputeState.set_state` and seed thousands with :meth:`add_server`.

Just over 400 lines and kept whole: what is left is one state machine, a server's create,
build, run, fault and delete under one lock, whose transitions read best side by side.
"""


from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

from .clock import Clock
from .compute_catalog import FlavorsKeypairsQuotas, _quota_message
from .compute_model import (  # noqa: F401  (names cloud.py, compute_api.py and the tests import from here)
    DELETE_SECONDS,
    FILTER_STATUSES,
    MAX_LIST_LIMIT,
    MAX_METADATA_ITEMS,
    MAX_USER_DATA,
    METADATA_LIMIT_MESSAGE,
    NOSTATE,
    RUNNING,
    SHUTDOWN,
    STATES,
    UNLIMITED,
    Booter,
    Fault,
    Flavor,
    Keypair,
    ListResult,
    Quota,
    Server,
    _check_metadata,
    _check_user_data,
)
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .faults import FaultInjector, VmFate
from .ids import IdFactory
from .image import ImageState
from .network import NetworkState


def _vm_states_of(status: str | list[str] | None) -> set[str] | None:
    """The vm_states a ``status`` filter (one status or several) selects; None: no filter."""
    if status is None:
        return None
    statuses = [status] if isinstance(status, str) else status
    return {FILTER_STATUSES[s.upper()] for s in statuses if s.upper() in FILTER_STATUSES}


class ComputeState(FlavorsKeypairsQuotas):
    """All of Nova's state. Thread-safe."""

    def __init__(self, clock: Clock, ids: IdFactory, images: ImageState, networks: NetworkState,
                 faults: FaultInjector, build_seconds: float = 0.0,
                 delete_seconds: float = DELETE_SECONDS) -> None:
        self.clock = clock
        self.ids = ids
        self.images = images
        self.networks = networks
        self.faults = faults
        self.build_seconds = build_seconds
        self.delete_seconds = delete_seconds
        #: Added to a detailed listing per server it returns (real Nova: ~8-13 ms, building each
        #: server's view); 0 by default, set by benchmarks.
        self.detail_seconds_per_server = 0.0
        self.flavors: dict[str, Flavor] = {}
        #: availability zones servers may be created in (add_zone adds more)
        self.zones: set[str] = {"nova"}
        self.keypairs: dict[tuple[str, str], Keypair] = {}  # (user_id, name)
        self.quotas: dict[str, Quota] = {}
        self.default_quota = Quota()
        self.servers: dict[str, Server] = {}
        self.deleted: dict[str, Server] = {}
        self.booter: Booter | None = None
        self._seq = 0
        self._lock = threading.RLock()

    # --- servers ---------------------------------------------------------------------------
    def create_server(self, project_id: str, user_id: str, spec: dict[str, Any]) -> Server:
        """Validate a ``POST /servers`` body (the ``server`` object) and create the server."""
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field/attribute name.")
        image_ref = spec.get("imageRef")
        if not image_ref:
            raise BadRequest("Missing imageRef attribute")
        image_id = str(image_ref).rstrip("/").rsplit("/", 1)[-1]
        try:
            self.images.get(image_id)
        except NotFound:
            raise BadRequest(f"Image {image_id} could not be found.") from None
        if not spec.get("flavorRef"):
            raise BadRequest("Missing flavorRef attribute")
        try:
            flavor = self.get_flavor(spec["flavorRef"])
        except NotFound as exc:
            raise BadRequest(exc.message) from None
        metadata = _check_metadata(spec.get("metadata") or {})
        user_data = _check_user_data(spec.get("user_data"))
        key_name = spec.get("key_name")
        if key_name:
            try:
                self.get_keypair(user_id, key_name)
            except NotFound:
                raise BadRequest("Invalid key_name provided.") from None
        networks = self._resolve_networks(spec.get("networks"))
        groups = [g.get("name", "default") if isinstance(g, dict) else str(g)
                  for g in (spec.get("security_groups") or [{"name": "default"}])]
        resolved = []
        for group in groups:  # Nova asks Neutron (by name or id): an unknown group refuses the create
            try:
                resolved.append(self.networks.find_security_group(project_id, group).name)
            except NotFound:
                raise BadRequest(f"Security group {group} not found for project {project_id}.") from None
        groups = resolved
        zone = spec.get("availability_zone") or "nova"
        if zone.split(":")[0] not in self.zones:
            raise BadRequest("The requested availability zone is not available")

        with self._lock:
            fate = self.faults.take_vm_fate()
            if fate is None and self.faults.lacks_capacity(flavor.name, zone.split(":")[0]):
                fate = VmFate("error")  # Nova's scheduler found no host: ERROR after the 202
            if fate is not None and fate.kind == "quota_refused":
                used = self.usage(project_id)
                raise Forbidden(_quota_message(["instances"], {"instances": 1}, used,
                                               {"instances": used["instances"]}))
            excess = self._quota_excess(project_id, flavor)
            if excess:
                raise Forbidden(excess)
            server = self._new_server(project_id, user_id, name, image_id, flavor, metadata)
            server.user_data = user_data
            server.key_name = key_name
            server.security_groups = groups
            server.availability_zone = zone.split(":")[0]
            server.config_drive = bool(spec.get("config_drive"))
            server.tags = list(spec.get("tags") or [])
            server.description = spec.get("description")
            for network in networks:
                server.addresses.setdefault(network.name, []).append({
                    "version": 4, "addr": self.networks.allocate_ip(network),
                    "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": self.ids.mac(),
                })
            self.servers[server.id] = server
            self._apply_fate(server, fate)
            self._refresh(server)
            return server

    def add_server(self, name: str, project_id: str, user_id: str = "", *, status: str = "ACTIVE",
                   flavor: str | Flavor | None = None, image_id: str | None = None,
                   metadata: dict[str, str] | None = None, created: float | None = None,
                   fault: Fault | dict[str, Any] | None = None) -> Server:
        """Seed a server directly: no quota check, no boot; for scale and policy tests."""
        if isinstance(flavor, Flavor):
            flv = flavor
        else:
            flv = self.find_flavor(flavor) if flavor else next(iter(self.flavors.values()))
        image = image_id or next(iter(self.images.images))
        with self._lock:
            server = self._new_server(project_id, user_id, name, image, flv, dict(metadata or {}))
            if created is not None:
                server.created = server.updated = created
            self.servers[server.id] = server
            self._set(server, status, fault)
            return server

    def _new_server(self, project_id: str, user_id: str, name: str, image_id: str, flavor: Flavor,
                    metadata: dict[str, str]) -> Server:
        now = self.clock.now()
        self._seq += 1
        server_id = self.ids.uuid()
        return Server(
            id=server_id, name=name, project_id=project_id, user_id=user_id, image_id=image_id,
            flavor=flavor, created=now, updated=now, seq=self._seq, metadata=metadata,
            build_until=now + self.build_seconds,
            host_id=hashlib.sha224((project_id + "localcloud").encode()).hexdigest(),
            console=[f"[    0.000000] LocalCloud virtual machine {server_id} ({name})"],
        )

    def _apply_fate(self, server: Server, fate: VmFate | None) -> None:
        if fate is None:
            return
        if fate.kind == "stuck":
            server.stuck = True
            server.task_state = "spawning"
        elif fate.kind == "error":  # failed before any host took it: no ports, no address
            server.addresses = {}
            self._set(server, "ERROR", Fault(fate.code, fate.message, self.clock.now()))
        elif fate.kind == "quota_recheck":
            server.addresses = {}
            used = self.usage(server.project_id)
            limit = max(used["instances"] - 1, 0)
            message = _quota_message(["instances"], {"instances": 1}, {"instances": limit},
                                     {"instances": limit})
            self._set(server, "ERROR", Fault(413, message, self.clock.now()))

    def _resolve_networks(self, requested: Any) -> list:
        if requested in (None, "auto"):
            found = self.networks.find()
            return found[:1]
        if requested == "none":
            return []
        if not isinstance(requested, list):
            raise BadRequest("Invalid input for field/attribute networks.")
        resolved = []
        for item in requested:
            net_id = item.get("uuid") if isinstance(item, dict) else None
            if not net_id:
                raise BadRequest("Bad networks format: network uuid is not in proper format")
            try:
                resolved.append(self.networks.get(net_id))
            except NotFound as exc:
                raise BadRequest(exc.message) from None
        return resolved

    def get_server(self, project_id: str | None, server_id: str) -> Server:
        with self._lock:
            server = self.servers.get(server_id)
            if server is not None:
                self._refresh(server)
            if server is None or server.status == "DELETED" or (
                    project_id is not None and server.project_id != project_id):
                raise NotFound(f"Instance {server_id} could not be found.")
            return server

    def rename_server(self, project_id: str | None, server_id: str, name: Any) -> Server:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field/attribute name.")
        with self._lock:
            server = self.get_server(project_id, server_id)
            server.name = name
            server.updated = self.clock.now()
            return server

    def delete_server(self, project_id: str | None, server_id: str) -> None:
        """Start deleting the server (Nova's DELETE); deleting it again changes nothing."""
        with self._lock:
            server = self.get_server(project_id, server_id)
            if server.delete_at is not None:
                return
            now = self.clock.now()
            server.task_state, server.updated = "deleting", now
            server.delete_at = now + self.delete_seconds
            if server.delete_at <= now:
                self._finish_delete(server)
        if self.booter is not None:
            self.booter.stop(server)

    def _finish_delete(self, server: Server) -> None:
        self.servers.pop(server.id, None)
        server.status, server.task_state = "DELETED", None
        server.updated = server.terminated_at = self.clock.now()
        self.deleted[server.id] = server

    def finish_deletions(self) -> None:
        """Complete every pending deletion now (a test that does not want to wait for them)."""
        with self._lock:
            for server in [s for s in self.servers.values() if s.delete_at is not None]:
                self._finish_delete(server)

    def set_state(self, server_id: str, status: str, fault: Fault | dict[str, Any] | str | None = None,
                  task_state: str | None = None) -> Server:
        """Drive a server for a test: ``SHUTOFF``, ``ERROR`` (with a fault), ``ACTIVE``, ``BUILD``..."""
        with self._lock:
            server = self.servers.get(server_id)
            if server is None:
                raise NotFound(f"Instance {server_id} could not be found.")
            self._set(server, status, fault, task_state)
            return server

    def _set(self, server: Server, status: str, fault: Fault | dict[str, Any] | str | None = None,
             task_state: str | None = None) -> None:
        status = status.upper()
        if status not in STATES:
            raise ValueError(f"unknown server status {status!r}; use one of {sorted(STATES)}")
        now = self.clock.now()
        server.status = status
        server.updated = now
        server.task_state = task_state if task_state is not None else (
            "spawning" if status == "BUILD" else None)
        server.stuck = status == "BUILD" and server.stuck
        if status == "ACTIVE" and server.launched_at is None:
            server.launched_at = now
        if status == "ERROR":
            if isinstance(fault, str):
                fault = Fault(500, fault, now)
            elif isinstance(fault, dict):
                fault = Fault(int(fault.get("code", 500)), str(fault.get("message", "")), now,
                              str(fault.get("details", "")))
            server.fault = fault or Fault(500, "Unknown error", now)
            server.console.append(f"LocalCloud: instance went to ERROR: {server.fault.message}")
        elif status in ("ACTIVE", "BUILD"):
            server.fault = None

    def _refresh(self, server: Server) -> None:
        """Apply the transitions that time or the boot process have made due."""
        if server.status == "DELETED":  # final: its updated time must not move at each listing
            return
        if server.delete_at is not None:
            if self.clock.now() >= server.delete_at:
                self._finish_delete(server)
            return
        if server.status == "BUILD" and not server.stuck and self.clock.now() >= server.build_until:
            self._set(server, "ACTIVE")
            if self.booter is not None and server.user_data:
                self.booter.start(server)
            else:  # nothing to run: the VM idles at its login prompt
                server.console.append(f"{server.name} login: ")
        elif server.status == "ACTIVE" and self.booter is not None:
            code = self.booter.exit_code(server)
            if code is not None:
                self._set(server, "SHUTOFF")

    def tick(self) -> None:
        with self._lock:
            for server in list(self.servers.values()):
                if server.status in ("BUILD", "ACTIVE") or server.delete_at is not None:
                    self._refresh(server)

    def list_servers(self, project_id: str | None, *, name: str | None = None,
                     status: str | list[str] | None = None,
                     changes_since: float | None = None, changes_before: float | None = None,
                     image: str | None = None, flavor: str | None = None,
                     availability_zone: str | None = None, limit: int | None = None,
                     marker: str | None = None, tags: str | None = None,
                     tags_any: str | None = None) -> ListResult:
        """Nova's listing: newest first; ``name`` is a regular expression (``re.search``);
        ``tags`` (all of) and ``tags_any`` (any of) are comma-separated, as in the query."""
        vm_states = _vm_states_of(status)
        all_tags = {t for t in (tags or "").split(",") if t}
        any_tags = {t for t in (tags_any or "").split(",") if t}
        try:
            pattern = re.compile(name) if name else None
        except re.error:
            raise BadRequest(f"Invalid regular expression in name filter: {name}") from None
        page = min(limit, MAX_LIST_LIMIT) if limit is not None else MAX_LIST_LIMIT
        if page < 0:
            raise BadRequest("limit must be >= 0")
        with self._lock:
            pool = list(self.servers.values())
            if changes_since is not None:
                pool += list(self.deleted.values())
            for server in pool:
                if server.status in ("BUILD", "ACTIVE") or server.delete_at is not None:
                    self._refresh(server)
            if changes_since is None:
                pool = [s for s in pool if s.status != "DELETED"]
            selected = [
                s for s in pool
                if (project_id is None or s.project_id == project_id)
                and (pattern is None or pattern.search(s.name))
                and (vm_states is None or STATES[s.status][0] in vm_states)
                and (changes_since is None or s.updated >= changes_since)
                and (changes_before is None or s.updated <= changes_before)
                and (image is None or s.image_id == image)
                and (flavor is None or s.flavor.id == flavor)
                and (availability_zone is None or s.availability_zone == availability_zone)
                and all_tags.issubset(s.tags)
                and (not any_tags or not any_tags.isdisjoint(s.tags))
            ]
            selected.sort(key=lambda s: (s.created, s.seq), reverse=True)
            if marker:
                index = next((i for i, s in enumerate(selected) if s.id == marker), None)
                if index is None:
                    known = marker in self.servers or marker in self.deleted
                    if not known:
                        raise BadRequest(f"marker [{marker}] not found")
                    # The marker fell out of the filter (e.g. changed state): restart after it.
                    ref = self.servers.get(marker) or self.deleted[marker]
                    index = next((i - 1 for i, s in enumerate(selected)
                                  if (s.created, s.seq) < (ref.created, ref.seq)), len(selected) - 1)
                selected = selected[index + 1:]
            return ListResult(selected[:page], page)

    def set_metadata(self, project_id: str | None, server_id: str, items: dict[str, Any],
                     replace: bool) -> dict[str, str]:
        checked = _check_metadata(items)
        with self._lock:
            server = self.get_server(project_id, server_id)
            merged = checked if replace else {**server.metadata, **checked}
            if len(merged) > self.quota(server.project_id).metadata_items:
                raise Forbidden(METADATA_LIMIT_MESSAGE.format(self.quota(server.project_id).metadata_items))
            server.metadata = merged
            server.updated = self.clock.now()
            return dict(server.metadata)

    def delete_metadata(self, project_id: str | None, server_id: str, key: str) -> None:
        with self._lock:
            server = self.get_server(project_id, server_id)
            if key not in server.metadata:
                raise NotFound("Metadata item was not found")
            del server.metadata[key]
            server.updated = self.clock.now()

    def console_output(self, project_id: str | None, server_id: str, length: int | None = None) -> str:
        server = self.get_server(project_id, server_id)
        if not server.has_host:
            raise Conflict(f"Instance {server_id} is not ready")
        text = "\n".join(server.console) + "\n"
        if self.booter is not None:
            text += self.booter.console(server) or ""
        if length is not None and length >= 0:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-length:]) if length else ""
        return text

    def stop_server(self, project_id: str | None, server_id: str) -> None:
        with self._lock:
            server = self.get_server(project_id, server_id)
            if server.status != "ACTIVE":
                raise Conflict(f"Cannot 'stop' instance {server_id} while it is in vm_state {server.vm_state}")
            self._set(server, "SHUTOFF")
        if self.booter is not None:
            self.booter.stop(server)

    def start_server(self, project_id: str | None, server_id: str) -> None:
        with self._lock:
            server = self.get_server(project_id, server_id)
            if server.status != "SHUTOFF":
                raise Conflict(f"Cannot 'start' instance {server_id} while it is in vm_state {server.vm_state}")
            self._set(server, "ACTIVE")
