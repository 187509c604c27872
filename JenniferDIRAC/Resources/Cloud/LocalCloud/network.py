"""Neutron subset: ``/v2.0/networks`` (and the fixed IPs servers get on them)."""

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


class NetworkState:
    def __init__(self, clock: Clock, ids: IdFactory) -> None:
        self.clock = clock
        self.ids = ids
        self.networks: dict[str, Network] = {}
        self._lock = threading.Lock()

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
