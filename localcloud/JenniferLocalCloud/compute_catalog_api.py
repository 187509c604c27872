"""Nova 2.1 routes of what servers are created from and counted against: flavors (with their
extra specs), keypairs, limits, quota sets, availability zones, and Nova's network and image
proxies; a base of ``ComputeAPI``, whose route table names these methods."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from .clock import iso
from .compute import ComputeState, Flavor
from .compute_microversions import MIN_MICROVERSION
from .image import ImageState
from .network import NetworkState
from .wire import Call, empty_response, json_response


class CatalogRoutes:
    """The flavor, keypair, limit, zone and proxy routes of ``ComputeAPI`` (which sets these)."""

    state: ComputeState
    images: ImageState
    networks: NetworkState

    def _links(self, call: Call, kind: str, item_id: str) -> list[dict[str, str]]:
        return [
            {"rel": "self", "href": f"{call.base_url}/compute/v2.1/{kind}/{item_id}"},
            {"rel": "bookmark", "href": f"{call.base_url}/compute/{kind}/{item_id}"},
        ]

    # --- flavors ---------------------------------------------------------------------------
    def flavor_body(self, call: Call, flavor: Flavor, detail: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"id": flavor.id, "name": flavor.name,
                                "links": self._links(call, "flavors", flavor.id)}
        if detail:
            body.update({
                "vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk,
                "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
                # before 2.75 Nova writes a swap of 0 as ""
                "swap": flavor.swap if (call.microversion or MIN_MICROVERSION) >= (2, 75) else (flavor.swap or ""),
                "rxtx_factor": 1.0, "os-flavor-access:is_public": flavor.is_public,
                "OS-FLV-DISABLED:disabled": False,
            })
            if (call.microversion or MIN_MICROVERSION) >= (2, 55):
                body["description"] = None
            if (call.microversion or MIN_MICROVERSION) >= (2, 61):
                body["extra_specs"] = dict(flavor.extra_specs)
        return body

    def _flavors(self, call: Call, detail: bool) -> Response:
        flavors = self.state.list_flavors()
        return json_response({"flavors": [self.flavor_body(call, f, detail) for f in flavors]})

    def list_flavors(self, call: Call) -> Response:
        return self._flavors(call, detail=False)

    def list_flavors_detail(self, call: Call) -> Response:
        return self._flavors(call, detail=True)

    def show_flavor(self, call: Call, flavor_id: str) -> Response:
        return json_response({"flavor": self.flavor_body(call, self.state.get_flavor(flavor_id))})

    def flavor_extra_specs(self, call: Call, flavor_id: str) -> Response:
        return json_response({"extra_specs": dict(self.state.get_flavor(flavor_id).extra_specs)})

    # --- keypairs --------------------------------------------------------------------------
    def keypair_body(self, keypair, with_private: str | None = None) -> dict[str, Any]:
        body = {"name": keypair.name, "public_key": keypair.public_key,
                "fingerprint": keypair.fingerprint, "type": keypair.type, "user_id": keypair.user_id,
                "created_at": iso(keypair.created), "deleted": False, "id": 1}
        if with_private:
            body["private_key"] = with_private
        return {"keypair": body}

    def list_keypairs(self, call: Call) -> Response:
        mine = self.state.list_keypairs(call.token.user_id)
        return json_response({"keypairs": [
            {"keypair": {"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint,
                         "type": k.type}} for k in mine]})

    def create_keypair(self, call: Call) -> Response:
        spec = call.json().get("keypair") or {}
        keypair = self.state.add_keypair(call.token.user_id, spec.get("name", ""), spec.get("public_key"))
        status = 201 if (call.microversion or MIN_MICROVERSION) >= (2, 2) else 200
        private = None if spec.get("public_key") else "-----BEGIN OPENSSH PRIVATE KEY-----\nlocalcloud\n"
        return json_response(self.keypair_body(keypair, private), status=status)

    def show_keypair(self, call: Call, name: str) -> Response:
        return json_response(self.keypair_body(self.state.get_keypair(call.token.user_id, name)))

    def delete_keypair(self, call: Call, name: str) -> Response:
        self.state.delete_keypair(call.token.user_id, name)
        status = 204 if (call.microversion or MIN_MICROVERSION) >= (2, 2) else 202
        return empty_response(status)

    # --- limits, quotas, zones -------------------------------------------------------------
    def limits(self, call: Call) -> Response:
        project_id = call.token.project_id
        quota, used = self.state.quota(project_id), self.state.usage(project_id)
        absolute = {
            "maxTotalInstances": quota.instances, "totalInstancesUsed": used["instances"],
            "maxTotalCores": quota.cores, "totalCoresUsed": used["cores"],
            "maxTotalRAMSize": quota.ram, "totalRAMUsed": used["ram"],
            "maxServerMeta": quota.metadata_items,
            "maxTotalKeypairs": quota.key_pairs, "maxServerGroups": 10, "maxServerGroupMembers": 10,
            "totalServerGroupsUsed": 0,
        }
        mv = call.microversion or MIN_MICROVERSION
        if mv < (2, 57):  # personality (injected files) and image metadata limits went in 2.57
            absolute.update({"maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240})
        if mv < (2, 36):  # the nova-network proxies went in 2.36; Nova reports them unlimited
            absolute.update({"maxSecurityGroups": -1, "maxSecurityGroupRules": -1,
                             "maxTotalFloatingIps": -1, "totalFloatingIpsUsed": 0,
                             "totalSecurityGroupsUsed": 0})
        return json_response({"limits": {"rate": [], "absolute": absolute}})

    def quota_set(self, call: Call, project_id: str) -> Response:
        quota = self.state.quota(project_id)
        return json_response({"quota_set": {
            "id": project_id, "instances": quota.instances, "cores": quota.cores, "ram": quota.ram,
            "key_pairs": quota.key_pairs, "metadata_items": quota.metadata_items,
            "server_groups": 10, "server_group_members": 10,
        }})

    def availability_zones(self, call: Call) -> Response:
        return json_response({"availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]})

    def availability_zones_detail(self, call: Call) -> Response:
        """The zones with their hosts (os-availability-zone/detail, what the CLI lists)."""
        return json_response({"availabilityZoneInfo": [
            {"zoneName": "internal", "zoneState": {"available": True},
             "hosts": {"localcloud-controller": {"nova-conductor": {
                 "available": True, "active": True, "updated_at": None}}}},
            {"zoneName": "nova", "zoneState": {"available": True},
             "hosts": {"localcloud-compute": {"nova-compute": {
                 "available": True, "active": True, "updated_at": None}}}}]})

    # --- Nova's network and image proxies (used by older clients, e.g. libcloud 1.1) --------
    def _nova_network(self, network) -> dict[str, Any]:
        return {"id": network.id, "label": network.name, "cidr": network.cidr}

    def list_os_networks(self, call: Call) -> Response:
        return json_response({"networks": [self._nova_network(n) for n in self.networks.find()]})

    def show_os_network(self, call: Call, network_id: str) -> Response:
        return json_response({"network": self._nova_network(self.networks.get(network_id))})

    def _nova_image(self, call: Call, image) -> dict[str, Any]:
        return {"id": image.id, "name": image.name, "status": "ACTIVE", "progress": 100,
                "minDisk": image.min_disk, "minRam": image.min_ram, "metadata": dict(image.properties),
                "created": iso(image.created), "updated": iso(image.created),
                "OS-EXT-IMG-SIZE:size": image.size, "links": self._links(call, "images", image.id)}

    def list_images(self, call: Call) -> Response:
        images = self.images.find(call.args.get("name"))
        return json_response({"images": [self._nova_image(call, i) for i in images]})

    def show_image(self, call: Call, image_id: str) -> Response:
        return json_response({"image": self._nova_image(call, self.images.get(image_id))})
