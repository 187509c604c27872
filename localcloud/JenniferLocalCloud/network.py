"""Neutron subset: ``/v2.0/networks`` (and the fixed IPs servers get on them), security groups
(every project has its ``default`` one, as in Neutron), quotas and availability zones."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from .clock import Clock, iso
from .errors import NotFound
from .ids import IdFactory
from .wire import Call, ServiceAPI, json_response, route


@dataclass
class Network:
    id: str
    name: str
    cidr: str
    created: float
    shared: bool = False
    external: bool = False
    project_id: str | None = None
    next_host: int = 10


@dataclass
class SecurityGroup:
    id: str
    name: str
    project_id: str
    created: float
    description: str = ""


NETWORK_QUOTA = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
                 "security_group": 10, "security_group_rule": 100, "rbac_policy": 10, "subnetpool": -1}


class NetworkState:
    def __init__(self, clock: Clock, ids: IdFactory) -> None:
        self.clock = clock
        self.ids = ids
        self.networks: dict[str, Network] = {}
        self.security_groups: dict[str, SecurityGroup] = {}
        self._lock = threading.Lock()

    def add_security_group(self, project_id: str, name: str, description: str = "") -> SecurityGroup:
        group = SecurityGroup(self.ids.uuid(), name, project_id, self.clock.now(), description)
        with self._lock:
            self.security_groups[group.id] = group
        return group

    def project_security_groups(self, project_id: str) -> list[SecurityGroup]:
        """The project's groups; Neutron creates its ``default`` one on first use."""
        with self._lock:
            mine = [g for g in self.security_groups.values() if g.project_id == project_id]
        if not any(g.name == "default" for g in mine):
            mine.insert(0, self.add_security_group(project_id, "default", "Default security group"))
        return mine

    def find_security_group(self, project_id: str, name_or_id: str) -> SecurityGroup:
        for group in self.project_security_groups(project_id):
            if name_or_id in (group.id, group.name):
                return group
        raise NotFound(f"Security group {name_or_id} not found.")

    def add_network(self, name: str, cidr: str = "10.0.0.0/16", network_id: str | None = None,
                    **fields: Any) -> Network:
        network = Network(id=network_id or self.ids.uuid(), name=name, cidr=cidr,
                          created=self.clock.now(), **fields)
        with self._lock:
            self.networks[network.id] = network
        return network

    def get(self, network_id: str) -> Network:
        with self._lock:
            network = self.networks.get(network_id)
        if network is None:
            raise NotFound(f"Network {network_id} could not be found.")
        return network

    def find(self, name: str | None = None) -> list[Network]:
        with self._lock:
            return [n for n in self.networks.values() if name is None or n.name == name]

    def allocate_ip(self, network: Network) -> str:
        net = ipaddress.ip_network(network.cidr)
        with self._lock:
            host = network.next_host
            network.next_host += 1
        return str(net.network_address + (host % (net.num_addresses - 2)) + 1)


def network_body(network: Network) -> dict[str, Any]:
    return {
        "id": network.id,
        "name": network.name,
        "status": "ACTIVE",
        "admin_state_up": True,
        "shared": network.shared,
        "router:external": network.external,
        "subnets": [],
        "tenant_id": network.project_id or "",
        "project_id": network.project_id or "",
        "mtu": 1450,
        "port_security_enabled": True,
        "availability_zones": ["nova"],
        "tags": [],
        "description": "",
        "created_at": iso(network.created),
        "updated_at": iso(network.created),
        "revision_number": 1,
    }


def security_group_body(group: SecurityGroup) -> dict[str, Any]:
    return {
        "id": group.id, "name": group.name, "description": group.description,
        "project_id": group.project_id, "tenant_id": group.project_id, "stateful": True, "shared": False,
        "security_group_rules": [], "tags": [], "revision_number": 1,
        "created_at": iso(group.created), "updated_at": iso(group.created),
    }


class NetworkAPI(ServiceAPI):
    name = "network"
    prefix = "/network"
    public = frozenset({"versions"})

    def __init__(self, state: NetworkState) -> None:
        self.state = state

    def rules(self):
        return [
            route("/", "versions", "GET"),
            route("/v2.0/networks", "list_networks", "GET"),
            route("/v2.0/networks/<network_id>", "show_network", "GET"),
            route("/v2.0/security-groups", "list_security_groups", "GET"),
            route("/v2.0/security-groups/<group_id>", "show_security_group", "GET"),
            route("/v2.0/quotas/<project_id>", "show_quota", "GET"),
            route("/v2.0/quotas/<project_id>/details.json", "show_quota_details", "GET"),
            route("/v2.0/availability_zones", "list_availability_zones", "GET"),
        ]

    def error_body(self, code: int, message: str) -> dict[str, Any]:
        kind = {404: "NetworkNotFound", 400: "BadRequest"}.get(code, "NeutronError")
        return {"NeutronError": {"type": kind, "message": message, "detail": ""}}

    def versions(self, call: Call) -> Response:
        return json_response({"versions": [
            {"id": "v2.0", "status": "CURRENT",
             "links": [{"rel": "self", "href": f"{call.base_url}/network/v2.0/"}]},
        ]})

    def list_networks(self, call: Call) -> Response:
        networks = self.state.find(call.args.get("name"))
        return json_response({"networks": [network_body(n) for n in networks]})

    def show_network(self, call: Call, network_id: str) -> Response:
        return json_response({"network": network_body(self.state.get(network_id))})

    def list_security_groups(self, call: Call) -> Response:
        groups = self.state.project_security_groups(call.token.project_id)
        wanted = {k: call.args.getlist(k) for k in ("id", "name") if k in call.args}
        groups = [g for g in groups if all(getattr(g, k) in v for k, v in wanted.items())]
        return json_response({"security_groups": [security_group_body(g) for g in groups]})

    def show_security_group(self, call: Call, group_id: str) -> Response:
        group = self.state.find_security_group(call.token.project_id, group_id)
        if group.id != group_id:
            raise NotFound(f"Security group {group_id} could not be found.")
        return json_response({"security_group": security_group_body(group)})

    def show_quota(self, call: Call, project_id: str) -> Response:
        return json_response({"quota": dict(NETWORK_QUOTA)})

    def show_quota_details(self, call: Call, project_id: str) -> Response:
        used = {"network": len(self.state.networks),
                "security_group": len(self.state.project_security_groups(project_id))}
        return json_response({"quota": {k: {"limit": v, "used": used.get(k, 0), "reserved": 0}
                                        for k, v in NETWORK_QUOTA.items()}})

    def list_availability_zones(self, call: Call) -> Response:
        return json_response({"availability_zones": [
            {"name": "nova", "resource": "network", "state": "available"},
            {"name": "nova", "resource": "router", "state": "available"}]})
