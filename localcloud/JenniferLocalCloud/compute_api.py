"""Nova 2.1 HTTP face of :class:`ComputeState`, with microversion negotiation: the route table,
servers, their metadata and actions; the flavor, keypair, limit, zone and proxy routes are in
compute_catalog_api.py."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from .clock import iso, parse_iso
from .compute import FILTER_STATUSES, ComputeState, Server
from .compute_catalog_api import CatalogRoutes
from .compute_microversions import MAX_MICROVERSION, MIN_MICROVERSION
from .errors import BadRequest, Forbidden, LocalCloudError, NotFound
from .image import ImageState
from .wire import Call, ServiceAPI, empty_response, html_response, json_response, new_request_id, route


FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
    409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit",
    501: "notImplemented", 503: "serviceUnavailable",
}


class NotAcceptable(LocalCloudError):
    code = 406


def _fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def negotiate(headers) -> tuple[int, int]:
    raw = None
    header = headers.get("OpenStack-API-Version")
    if header:
        for part in header.split(","):
            service, _, value = part.strip().partition(" ")
            if service.lower() == "compute":
                raw = value.strip()
    raw = raw or headers.get("X-OpenStack-Nova-API-Version")
    if not raw:
        return MIN_MICROVERSION
    if raw.lower() == "latest":
        return MAX_MICROVERSION
    if not re.fullmatch(r"\d+\.\d+", raw.strip()):
        raise BadRequest(f"API Version String {raw} is of invalid format. Must be of format "
                         "MajorNum.MinorNum.")
    major, minor = (int(x) for x in raw.split("."))
    if not MIN_MICROVERSION <= (major, minor) <= MAX_MICROVERSION:
        raise UnsupportedVersion((major, minor))
    return major, minor


class UnsupportedVersion(NotAcceptable):
    """Nova answers 406 and still echoes the version asked for in its headers."""

    def __init__(self, version: tuple[int, int]) -> None:
        super().__init__(f"Version {_fmt(version)} is not supported by the API. Minimum is "
                         f"{_fmt(MIN_MICROVERSION)} and maximum is {_fmt(MAX_MICROVERSION)}.")
        self.version = version


class ComputeAPI(CatalogRoutes, ServiceAPI):
    name = "compute"
    prefix = "/compute"
    public = frozenset({"versions", "version_v21"})

    def __init__(self, state: ComputeState, images: ImageState) -> None:
        self.state = state
        self.images = images
        self.networks = state.networks

    def rules(self):
        return [
            route("/", "versions", "GET"),
            route("/v2.1", "version_v21", "GET"),
            route("/v2.1/servers", "list_servers", "GET"),
            route("/v2.1/servers", "create_server", "POST"),
            route("/v2.1/servers/detail", "list_servers_detail", "GET"),
            route("/v2.1/servers/<server_id>", "show_server", "GET"),
            route("/v2.1/servers/<server_id>", "update_server", "PUT"),
            route("/v2.1/servers/<server_id>", "delete_server", "DELETE"),
            route("/v2.1/servers/<server_id>/metadata", "list_metadata", "GET"),
            route("/v2.1/servers/<server_id>/metadata", "replace_metadata", "PUT"),
            route("/v2.1/servers/<server_id>/metadata", "update_metadata", "POST"),
            route("/v2.1/servers/<server_id>/metadata/<key>", "show_metadata_item", "GET"),
            route("/v2.1/servers/<server_id>/metadata/<key>", "set_metadata_item", "PUT"),
            route("/v2.1/servers/<server_id>/metadata/<key>", "delete_metadata_item", "DELETE"),
            route("/v2.1/servers/<server_id>/action", "server_action", "POST"),
            route("/v2.1/flavors", "list_flavors", "GET"),
            route("/v2.1/flavors/detail", "list_flavors_detail", "GET"),
            route("/v2.1/flavors/<flavor_id>", "show_flavor", "GET"),
            route("/v2.1/flavors/<flavor_id>/os-extra_specs", "flavor_extra_specs", "GET"),
            route("/v2.1/os-keypairs", "list_keypairs", "GET"),
            route("/v2.1/os-keypairs", "create_keypair", "POST"),
            route("/v2.1/os-keypairs/<name>", "show_keypair", "GET"),
            route("/v2.1/os-keypairs/<name>", "delete_keypair", "DELETE"),
            route("/v2.1/limits", "limits", "GET"),
            route("/v2.1/os-quota-sets/<project_id>", "quota_set", "GET"),
            route("/v2.1/os-availability-zone", "availability_zones", "GET"),
            route("/v2.1/os-availability-zone/detail", "availability_zones_detail", "GET"),
            route("/v2.1/os-networks", "list_os_networks", "GET"),
            route("/v2.1/os-networks/<network_id>", "show_os_network", "GET"),
            route("/v2.1/images", "list_images", "GET"),
            route("/v2.1/images/detail", "list_images", "GET"),
            route("/v2.1/images/<image_id>", "show_image", "GET"),
        ]

    def unmatched(self, method: str, path: str, status: int, allowed: list[str]) -> Response:
        # Nova's router answers a wrong method like an unknown path: 404, an HTML page
        response = html_response(404, "404 Not Found", "The resource could not be found.<br /><br />\n\n\n")
        response.headers["x-compute-request-id"] = response.headers["x-openstack-request-id"]
        return response

    def error_body(self, code: int, message: str) -> dict[str, Any]:
        name = "computeFault" if code == 406 else FAULT_NAMES.get(code, "computeFault")
        return {name: {"code": code, "message": message}}

    def prepare(self, call: Call) -> None:
        request_id = new_request_id()
        call.extra_headers["x-openstack-request-id"] = request_id
        call.extra_headers["x-compute-request-id"] = request_id
        try:
            call.microversion = negotiate(call.request.headers)
        except UnsupportedVersion as exc:
            self._version_headers(call, exc.version)
            raise
        self._version_headers(call, call.microversion)

    def _version_headers(self, call: Call, version: tuple[int, int]) -> None:
        call.extra_headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
        value = _fmt(version)
        call.extra_headers["OpenStack-API-Version"] = f"compute {value}"
        call.extra_headers["X-OpenStack-Nova-API-Version"] = value

    # --- discovery -------------------------------------------------------------------------
    def _version(self, base_url: str) -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": _fmt(MAX_MICROVERSION),
            "min_version": _fmt(MIN_MICROVERSION),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base_url}/compute/v2.1/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }

    def versions(self, call: Call) -> Response:
        return json_response({"versions": [self._version(call.base_url)]})

    def version_v21(self, call: Call) -> Response:
        return json_response({"version": self._version(call.base_url)})

    # --- servers ---------------------------------------------------------------------------
    def server_body(self, call: Call, server: Server) -> dict[str, Any]:
        mv = call.microversion or MIN_MICROVERSION
        flavor: dict[str, Any]
        if mv >= (2, 47):
            flv = server.flavor
            flavor = {"vcpus": flv.vcpus, "ram": flv.ram, "disk": flv.disk, "ephemeral": flv.ephemeral,
                      "swap": flv.swap, "original_name": flv.name, "extra_specs": dict(flv.extra_specs)}
        else:
            flavor = {"id": server.flavor.id, "links": self._links(call, "flavors", server.flavor.id)[1:]}
        body: dict[str, Any] = {
            "id": server.id,
            "name": server.name,
            "status": server.status,
            "tenant_id": server.project_id,
            "user_id": server.user_id,
            "metadata": dict(server.metadata),
            "hostId": server.host_id,
            "image": {"id": server.image_id, "links": self._links(call, "images", server.image_id)[1:]},
            "flavor": flavor,
            "created": iso(server.created),
            "updated": iso(server.updated),
            "addresses": {k: [dict(a) for a in v] for k, v in server.addresses.items()},
            "accessIPv4": "",
            "accessIPv6": "",
            "links": self._links(call, "servers", server.id),
            "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": server.availability_zone,
            "config_drive": "True" if server.config_drive else "",
            "key_name": server.key_name,
            "OS-SRV-USG:launched_at": iso(server.launched_at).replace("Z", ".000000")
            if server.launched_at else None,
            "OS-SRV-USG:terminated_at": iso(server.terminated_at).replace("Z", ".000000")
            if server.terminated_at else None,
            "OS-EXT-STS:task_state": server.task_state,
            "OS-EXT-STS:vm_state": server.vm_state,
            "OS-EXT-STS:power_state": server.power_state,
            "os-extended-volumes:volumes_attached": [],
        }
        if server.status in ("ACTIVE", "BUILD"):  # Nova shows progress only while it means something
            body["progress"] = 0
        if server.addresses and server.status != "DELETED":  # the groups of the server's ports
            body["security_groups"] = [{"name": g} for g in server.security_groups]
        if mv >= (2, 9):
            body["locked"] = False
        if mv >= (2, 19):
            body["description"] = server.description
        if mv >= (2, 26):
            body["tags"] = list(server.tags)
        if mv >= (2, 63):
            body["trusted_image_certificates"] = None
        if mv >= (2, 73):
            body["locked_reason"] = None
        if mv >= (2, 90):
            body["OS-EXT-SRV-ATTR:hostname"] = _hostname(server.name)
        if mv >= (2, 96):
            body["pinned_availability_zone"] = None
        if server.fault is not None:
            body["fault"] = {"code": server.fault.code, "message": server.fault.message,
                             "created": iso(server.fault.created)}
            if server.fault.details:
                body["fault"]["details"] = server.fault.details
        return body

    def _list(self, call: Call, detail: bool) -> Response:
        args = call.args
        limit = _int_arg(args, "limit")
        try:
            since = parse_iso(args["changes-since"]) if args.get("changes-since") else None
            before = parse_iso(args["changes-before"]) if args.get("changes-before") else None
        except ValueError:
            raise BadRequest("Invalid input for query parameters changes-since/changes-before.") from None
        result = self.state.list_servers(
            call.token.project_id,
            name=args.get("name"), status=self._status_filter(call), changes_since=since,
            changes_before=before, image=args.get("image"), flavor=args.get("flavor"),
            availability_zone=args.get("availability_zone"), limit=limit, marker=args.get("marker"),
            # Nova ignores the tag filters below 2.26, where tags do not exist
            tags=args.get("tags") if call.microversion >= (2, 26) else None,
            tags_any=args.get("tags-any") if call.microversion >= (2, 26) else None,
        )
        if detail:
            items = [self.server_body(call, s) for s in result.servers]
            self.state.faults.wait(self.state.detail_seconds_per_server * len(items))
        else:
            items = [{"id": s.id, "name": s.name, "links": self._links(call, "servers", s.id)}
                     for s in result.servers]
        body: dict[str, Any] = {"servers": items}
        if result.servers and len(result.servers) == result.limit:
            query = [(k, v) for k, v in args.items(multi=True) if k not in ("marker", "limit")]
            query += [("limit", str(result.limit)), ("marker", result.servers[-1].id)]
            path = "servers/detail" if detail else "servers"
            body["servers_links"] = [{"rel": "next",
                                      "href": f"{call.base_url}/compute/v2.1/{path}?{urlencode(query)}"}]
        return json_response(body)

    @staticmethod
    def _status_filter(call: Call) -> list[str] | None:
        """The ``status`` values of a listing (repeatable, as Nova's; unknown ones ignored): none
        known is refused from 2.38 (matches nothing before), and deleted servers alone only an
        admin may list (LocalCloud has no admin)."""
        asked = call.args.getlist("status")
        if not asked:
            return None
        statuses = [s.upper() for s in asked if s.upper() in FILTER_STATUSES]
        if not statuses and call.microversion >= (2, 38):
            raise BadRequest("Invalid status value")
        if statuses and {FILTER_STATUSES[s] for s in statuses} == {"deleted"}:
            raise Forbidden("Only administrators may list deleted instances")
        return statuses

    def list_servers(self, call: Call) -> Response:
        return self._list(call, detail=False)

    def list_servers_detail(self, call: Call) -> Response:
        return self._list(call, detail=True)

    def create_server(self, call: Call) -> Response:
        body = call.json()
        spec = body.get("server")
        if not isinstance(spec, dict):
            raise BadRequest(f"Invalid input for field/attribute server. Value: {spec}. "
                             f"{spec!r} is not of type 'object'")
        check_create_schema(spec, call.microversion)
        if call.microversion < (2, 19):  # before descriptions existed, Nova copies the name
            spec = {**spec, "description": spec.get("name")}
        server = self.state.create_server(call.token.project_id, call.token.user_id, spec)
        links = self._links(call, "servers", server.id)
        return json_response(
            {"server": {"id": server.id, "links": links, "OS-DCF:diskConfig": "MANUAL",
                        "security_groups": [{"name": g} for g in server.security_groups],
                        "adminPass": secrets.token_urlsafe(9)}},
            status=202, headers={"Location": links[0]["href"]},
        )

    def show_server(self, call: Call, server_id: str) -> Response:
        server = self.state.get_server(call.token.project_id, server_id)
        body = self.server_body(call, server)
        if call.microversion >= (2, 71):  # shown by GET /servers/{id}, not by the listings
            body["server_groups"] = []
        return json_response({"server": body})

    def update_server(self, call: Call, server_id: str) -> Response:
        spec = call.json().get("server") or {}
        if "name" in spec:
            server = self.state.rename_server(call.token.project_id, server_id, spec["name"])
        else:
            server = self.state.get_server(call.token.project_id, server_id)
        return json_response({"server": self.server_body(call, server)})

    def delete_server(self, call: Call, server_id: str) -> Response:
        self.state.delete_server(call.token.project_id, server_id)
        return empty_response(204)

    # --- metadata --------------------------------------------------------------------------
    def list_metadata(self, call: Call, server_id: str) -> Response:
        server = self.state.get_server(call.token.project_id, server_id)
        return json_response({"metadata": dict(server.metadata)})

    def replace_metadata(self, call: Call, server_id: str) -> Response:
        items = call.json().get("metadata")
        metadata = self.state.set_metadata(call.token.project_id, server_id, items, replace=True)
        return json_response({"metadata": metadata})

    def update_metadata(self, call: Call, server_id: str) -> Response:
        items = call.json().get("metadata")
        metadata = self.state.set_metadata(call.token.project_id, server_id, items, replace=False)
        return json_response({"metadata": metadata})

    def show_metadata_item(self, call: Call, server_id: str, key: str) -> Response:
        server = self.state.get_server(call.token.project_id, server_id)
        if key not in server.metadata:
            raise NotFound("Metadata item was not found")
        return json_response({"meta": {key: server.metadata[key]}})

    def set_metadata_item(self, call: Call, server_id: str, key: str) -> Response:
        meta = call.json().get("meta")
        if not isinstance(meta, dict) or list(meta) != [key]:
            raise BadRequest("Request body and URI mismatch")
        self.state.set_metadata(call.token.project_id, server_id, meta, replace=False)
        return json_response({"meta": meta})

    def delete_metadata_item(self, call: Call, server_id: str, key: str) -> Response:
        self.state.delete_metadata(call.token.project_id, server_id, key)
        return empty_response(204)

    # --- actions ---------------------------------------------------------------------------
    def server_action(self, call: Call, server_id: str) -> Response:
        body = call.json()
        if len(body) != 1:
            raise BadRequest("Malformed request body")
        action, params = next(iter(body.items()))
        project_id = call.token.project_id
        if action == "os-getConsoleOutput":
            length = (params or {}).get("length")
            try:
                length = None if length in (None, "") else int(length)
            except (TypeError, ValueError):
                raise BadRequest("Invalid input for field/attribute length.") from None
            return json_response({"output": self.state.console_output(project_id, server_id, length)})
        if action == "os-stop":
            self.state.stop_server(project_id, server_id)
            return empty_response(202)
        if action == "os-start":
            self.state.start_server(project_id, server_id)
            return empty_response(202)
        if action == "reboot":
            self.state.get_server(project_id, server_id)
            return empty_response(202)
        raise BadRequest(f"There is no such action: {action}")


def _hostname(name: str) -> str:
    """Nova's sanitised hostname of a server name (lowercase, [a-z0-9-], at most 63)."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower().replace("_", "-").replace(" ", "-")).strip("-.")
    return text[:63] or "server"


MAX_TAGS = 50  # Nova's instance tag limit
MAX_TAG_LENGTH = 60


def check_create_schema(spec: dict[str, Any], microversion: tuple[int, int]) -> None:
    """What Nova's JSON schema of POST /servers refuses that the state would not see."""
    if microversion >= (2, 37) and "networks" not in spec:
        raise BadRequest(f"Invalid input for field/attribute server. Value: {spec}. "
                         "'networks' is a required property")
    if "tags" not in spec:
        return
    if microversion < (2, 52):
        raise BadRequest(f"Invalid input for field/attribute server. Value: {spec}. "
                         "Additional properties are not allowed ('tags' was unexpected)")
    tags = spec["tags"]
    if not isinstance(tags, list):
        raise BadRequest(f"Invalid input for field/attribute tags. Value: {tags}. "
                         f"{tags!r} is not of type 'array'")
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"Invalid input for field/attribute tags. Value: {tags}. {tags!r} is too long")
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG_LENGTH or re.search(r"[,/]", tag):
            raise BadRequest(f"Invalid input for field/attribute {index}. Value: {tag}. "
                             f"{tag!r} does not match '^[^,/]*$'")


def _int_arg(args, name: str) -> int | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}.") from None
