"""STAND-IN image (Glance v2) and network (Neutron v2.0) endpoints for the real Nova process.

Not Glance, not Neutron. Real Nova here runs with its own in-process test fixtures for Glance
and Neutron (nova.tests.fixtures.GlanceFixture / NeutronFixture): Nova resolves images and
networks through those, so a separately running real Glance would hold other images than the
ones Nova boots. This stand-in publishes exactly what Nova's fixtures hold, read-only, in the
shapes openstacksdk and the openstack CLI read (image and network lookups by name or id,
security groups, network quotas), behind the same keystonemiddleware token check as Nova.
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qs

IMAGE_KEYS = ("id", "name", "status", "visibility", "container_format", "disk_format", "min_disk",
              "min_ram", "size", "created_at", "updated_at", "protected", "tags")


def _json(start_response, status: int, body: Any, headers=()) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 300: "Multiple Choices", 404: "Not Found", 405: "Method Not Allowed"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data))), *headers])
    return [data]


def _image_body(image: dict[str, Any]) -> dict[str, Any]:
    body = {key: image.get(key) for key in IMAGE_KEYS}
    body["status"] = (body["status"] or "active").lower()
    body["visibility"] = "public" if image.get("is_public", True) else "private"
    body["tags"] = list(image.get("tags") or [])
    body["self"] = f"/v2/images/{image['id']}"
    body["file"] = f"/v2/images/{image['id']}/file"
    body["schema"] = "/v2/schemas/image"
    for key in ("created_at", "updated_at"):
        value = image.get(key)
        body[key] = value.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(value, "strftime") else value
    return body


class ImageStandIn:
    def __init__(self, images: Callable[[], list[dict[str, Any]]]) -> None:
        self.images = images

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if environ["REQUEST_METHOD"] != "GET":
            return _json(start_response, 405, {"code": 405, "title": "Method Not Allowed"})
        if path == "/":
            base = _base_url(environ)
            return _json(start_response, 300, {"versions": [
                {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": f"{base}/v2/"}]}]})
        if path == "/v2/images":
            found = [i for i in self.images() if "name" not in query or i.get("name") == query["name"]]
            return _json(start_response, 200, {"images": [_image_body(i) for i in found],
                                               "first": "/v2/images", "schema": "/v2/schemas/images"})
        if path.startswith("/v2/images/"):
            image_id = path.rsplit("/", 1)[1]
            for image in self.images():
                if image["id"] == image_id:
                    return _json(start_response, 200, _image_body(image))
            return _json(start_response, 404, {"code": 404, "title": "Not Found",
                                               "message": f"No image found with ID {image_id}"})
        return _json(start_response, 404, {"code": 404, "title": "Not Found", "message": path})


class NetworkStandIn:
    def __init__(self, neutron) -> None:
        self.neutron = neutron  # nova.tests.fixtures.NeutronFixture: neutronclient-like methods

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if environ["REQUEST_METHOD"] != "GET":
            return _json(start_response, 405, _neutron_error("HTTPMethodNotAllowed", "Method not allowed"))
        if path == "/":
            base = _base_url(environ)
            return _json(start_response, 200, {"versions": [
                {"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": f"{base}/v2.0/"}]}]})
        filters = {k: v for k, v in query.items() if k in ("name", "id")}
        if path == "/v2.0/networks":
            return _json(start_response, 200, self.neutron.list_networks(**filters))
        if path.startswith("/v2.0/networks/"):
            network_id = path.rsplit("/", 1)[1]
            found = self.neutron.list_networks(id=network_id)["networks"]
            if found:
                return _json(start_response, 200, {"network": found[0]})
            return _json(start_response, 404, _neutron_error("NetworkNotFound",
                                                             f"Network {network_id} could not be found."))
        if path == "/v2.0/security-groups":
            groups = self.neutron.list_security_groups(**filters)["security_groups"]
            return _json(start_response, 200, {"security_groups": groups})
        if path.startswith("/v2.0/quotas/"):
            return _json(start_response, 200, self.neutron.show_quota(path.rsplit("/", 1)[1]))
        return _json(start_response, 404, _neutron_error("HTTPNotFound", "The resource could not be found."))


def _neutron_error(kind: str, message: str) -> dict[str, Any]:
    return {"NeutronError": {"type": kind, "message": message, "detail": ""}}


def _base_url(environ) -> str:
    return f"http://{environ['HTTP_HOST']}{environ.get('SCRIPT_NAME', '')}"
