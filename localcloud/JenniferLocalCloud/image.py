"""Glance v2 subset: ``/v2/images`` with the name filter clients use."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Response

from .clock import Clock, iso
from .errors import NotFound
from .ids import IdFactory
from .wire import Call, ServiceAPI, json_response, route


@dataclass
class Image:
    id: str
    name: str
    created: float
    min_disk: int = 0
    min_ram: int = 0
    size: int = 1_073_741_824
    disk_format: str = "qcow2"
    visibility: str = "public"
    properties: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    status: str = "active"


#: list_images query parameters that are not image properties (Glance v2)
_NOT_PROPERTIES = {"id", "name", "limit", "marker", "sort", "sort_key", "sort_dir", "tag", "status", "visibility",
                   "member_status", "owner", "os_hidden", "protected", "created_at", "updated_at",
                   "size_min", "size_max", "container_format", "disk_format"}


class ImageState:
    def __init__(self, clock: Clock, ids: IdFactory) -> None:
        self.clock = clock
        self.ids = ids
        self.images: dict[str, Image] = {}
        self._lock = threading.Lock()

    def add_image(self, name: str, image_id: str | None = None, **fields: Any) -> Image:
        image = Image(id=image_id or self.ids.uuid(), name=name, created=self.clock.now(), **fields)
        with self._lock:
            self.images[image.id] = image
        return image

    def get(self, image_id: str) -> Image:
        with self._lock:
            image = self.images.get(image_id)
        if image is None:
            raise NotFound(f"No image found with ID {image_id}")
        return image

    def find(self, name: str | None = None) -> list[Image]:
        with self._lock:
            return [i for i in self.images.values() if name is None or i.name == name]

    def remove_image(self, image_id: str) -> None:
        """The site deletes an image (servers booted from it keep running)."""
        with self._lock:
            self.images.pop(image_id, None)


def image_body(image: Image, base_url: str) -> dict[str, Any]:
    body = {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": False,
        "os_hidden": False,
        "container_format": "bare",
        "disk_format": image.disk_format,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "size": image.size,
        "virtual_size": None,
        "checksum": None,
        "os_hash_algo": None,
        "os_hash_value": None,
        "owner": None,
        "tags": list(image.tags),
        "created_at": iso(image.created),
        "updated_at": iso(image.created),
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    }
    body.update(image.properties)
    return body


class ImageAPI(ServiceAPI):
    name = "image"
    prefix = "/image"
    public = frozenset({"versions"})

    def __init__(self, state: ImageState) -> None:
        self.state = state

    def rules(self):
        return [
            route("/", "versions", "GET"),
            route("/v2/images", "list_images", "GET"),
            route("/v2/images/<image_id>", "show_image", "GET"),
        ]

    def error_body(self, code: int, message: str) -> dict[str, Any]:
        return {"code": code, "title": {404: "Not Found"}.get(code, "Error"), "message": message}

    def versions(self, call: Call) -> Response:
        return json_response({"versions": [
            {"id": "v2.16", "status": "CURRENT",
             "links": [{"rel": "self", "href": f"{call.base_url}/image/v2/"}]},
        ]}, status=300)

    def list_images(self, call: Call) -> Response:
        images = sorted(self.state.find(call.args.get("name")), key=lambda i: (i.created, i.id), reverse=True)
        # Glance v2 filters: every tag= given, status=, and any other parameter as a property
        tags = call.args.getlist("tag")
        images = [i for i in images if all(t in i.tags for t in tags)]
        if call.args.get("status"):
            images = [i for i in images if i.status == call.args["status"]]
        if call.args.get("id"):  # id=<uuid> or id=in:<uuid>,<uuid> (what openstackclient asks)
            wanted = set(call.args["id"].removeprefix("in:").split(","))
            images = [i for i in images if i.id in wanted]
        for key, value in call.args.items():
            if key not in _NOT_PROPERTIES:
                images = [i for i in images if str(i.properties.get(key, "")) == value]
        return json_response({
            "images": [image_body(i, call.base_url) for i in images],
            "first": "/v2/images",
            "schema": "/v2/schemas/images",
        })

    def show_image(self, call: Call, image_id: str) -> Response:
        return json_response(image_body(self.state.get(image_id), call.base_url))
