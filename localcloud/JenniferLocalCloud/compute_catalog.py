"""Nova's flavors, availability zones, keypairs and quotas (with the usage a server create is
checked against): the part of ``ComputeState`` that servers are created from."""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

from .clock import Clock
from .compute_model import UNLIMITED, Flavor, Keypair, Quota, Server
from .errors import BadRequest, Conflict, NotFound
from .ids import IdFactory


class FlavorsKeypairsQuotas:
    """Flavors, zones, keypairs and quotas of ``ComputeState`` (which sets these attributes)."""

    clock: Clock
    ids: IdFactory
    flavors: dict[str, Flavor]
    zones: set[str]
    keypairs: dict[tuple[str, str], Keypair]
    quotas: dict[str, Quota]
    default_quota: Quota
    servers: dict[str, Server]
    _lock: threading.RLock

    def add_flavor(self, name: str, vcpus: int, ram: int, disk: int = 20, flavor_id: str | None = None,
                   **fields: Any) -> Flavor:
        flavor = Flavor(id=flavor_id or str(len(self.flavors) + 1), name=name, vcpus=vcpus, ram=ram,
                        disk=disk, **fields)
        with self._lock:
            self.flavors[flavor.id] = flavor
        return flavor

    def add_zone(self, name: str) -> None:
        with self._lock:
            self.zones.add(name)

    def get_flavor(self, ref: str) -> Flavor:
        """The flavor of an id or a flavor link (``flavorRef``); names are not accepted, as in Nova."""
        flavor_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            flavor = self.flavors.get(flavor_id)
        if flavor is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return flavor

    def list_flavors(self) -> list[Flavor]:
        with self._lock:
            return sorted(self.flavors.values(), key=lambda f: (f.ram, f.vcpus, f.id))

    def list_keypairs(self, user_id: str) -> list[Keypair]:
        with self._lock:
            return [k for (user, _), k in sorted(self.keypairs.items()) if user == user_id]

    def find_flavor(self, name_or_id: str) -> Flavor:
        with self._lock:
            flavor = next((f for f in self.flavors.values() if f.name == name_or_id), None)
        return flavor or self.get_flavor(name_or_id)

    def add_keypair(self, user_id: str, name: str, public_key: str | None = None) -> Keypair:
        if not re.fullmatch(r"[A-Za-z0-9_\- .@]{1,255}", name or ""):
            raise BadRequest("Keypair data is invalid: Keypair name contains unsafe characters")
        key = public_key or "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + self.ids.hex() + " localcloud"
        digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
        fingerprint = ":".join(digest[i:i + 2] for i in range(0, 32, 2))
        with self._lock:
            if (user_id, name) in self.keypairs:
                raise Conflict(f"Key pair '{name}' already exists.")
            keypair = Keypair(name, key, fingerprint, user_id, self.clock.now())
            self.keypairs[(user_id, name)] = keypair
        return keypair

    def get_keypair(self, user_id: str, name: str) -> Keypair:
        with self._lock:
            keypair = self.keypairs.get((user_id, name))
        if keypair is None:
            raise NotFound(f"Keypair {name} not found for user {user_id}")
        return keypair

    def delete_keypair(self, user_id: str, name: str) -> None:
        with self._lock:
            if self.keypairs.pop((user_id, name), None) is None:
                raise NotFound(f"Keypair {name} not found for user {user_id}")

    def quota(self, project_id: str) -> Quota:
        with self._lock:
            return self.quotas.get(project_id, self.default_quota)

    def set_quota(self, project_id: str | None = None, *, instances: int | None = None,
                  cores: int | None = None, ram: int | None = None, **other: int) -> Quota:
        """Set quotas of one project (default: every project without its own); -1 = unlimited."""
        with self._lock:
            if project_id is None:
                quota = self.default_quota
            else:
                base = self.quotas.get(project_id, self.default_quota)
                quota = self.quotas[project_id] = Quota(**vars(base))
            for key, value in {"instances": instances, "cores": cores, "ram": ram, **other}.items():
                if value is not None:
                    setattr(quota, key, int(value))
            return quota

    def usage(self, project_id: str) -> dict[str, int]:
        with self._lock:
            mine = [s for s in self.servers.values() if s.project_id == project_id]
            return {
                "instances": len(mine),
                "cores": sum(s.flavor.vcpus for s in mine),
                "ram": sum(s.flavor.ram for s in mine),
            }

    def _quota_excess(self, project_id: str, flavor: Flavor) -> str | None:
        quota, used = self.quota(project_id), self.usage(project_id)
        requested = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.ram}
        overs = sorted(
            r for r, n in requested.items()
            if getattr(quota, r) != UNLIMITED and used[r] + n > getattr(quota, r)
        )
        if not overs:
            return None
        return _quota_message(overs, requested, used, {r: getattr(quota, r) for r in overs})


def _quota_message(overs: list[str], requested: dict[str, int], used: dict[str, int],
                   allowed: dict[str, int]) -> str:
    def join(values: dict[str, int]) -> str:
        return ", ".join(str(values[r]) for r in overs)

    names = ", ".join(overs)
    return (f"Quota exceeded for {names}: Requested {join(requested)}, "
            f"but already used {join(used)} of {join(allowed)} {names}")
