"""What the conformance test compares between LocalCloud and real Keystone 30 / Nova 34.

A ``Side`` sends one raw HTTP request to one cloud (the demo project's token, a given compute
microversion); ``compare`` reduces the two answers to the facts clients depend on - status,
the headers clients read, the recursive key set and JSON types of the body - and lists where
they differ. Values that are naturally different (ids, times, URLs) are not compared; a case can
ask for chosen values to be compared too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

# headers clients read: compared by presence, and by value where the value is protocol
PRESENCE_HEADERS = ("x-openstack-request-id", "x-compute-request-id", "location", "x-subject-token", "vary",
                    "www-authenticate")
VALUE_HEADERS = ("openstack-api-version", "x-openstack-nova-api-version")


@dataclass
class Side:
    name: str
    identity_url: str  # .../v3
    compute_url: str  # .../v2.1
    token: Callable[[], str]
    image_id: str
    network_id: str
    http: requests.Session = field(default_factory=requests.Session)

    def url(self, service: str, path: str) -> str:
        return (self.identity_url if service == "identity" else self.compute_url) + path

    def send(self, method: str, service: str, path: str, body: Any = None, microversion: str | None = None,
             headers: dict[str, str] | None = None, data: str | None = None, token: bool = True) -> requests.Response:
        sent = {"Content-Type": "application/json"} if body is not None or data is not None else {}
        if token:
            sent["X-Auth-Token"] = self.token()
        if microversion:
            sent["OpenStack-API-Version"] = f"compute {microversion}"
        sent.update(headers or {})
        payload = data if data is not None else (json.dumps(body) if body is not None else None)
        return self.http.request(method, self.url(service, path), data=payload, headers=sent, timeout=60)


OPAQUE = (".metadata", ".extra_specs")  # user-chosen keys: data, not structure


def shape(value: Any, path: str = "") -> dict[str, str]:
    """{json path: JSON type} for every node; list items merge under ``[]``."""
    if isinstance(value, dict) and path.endswith(OPAQUE):
        return {path: "object"}
    if isinstance(value, dict):
        out = {path or ".": "object"}
        for key, item in value.items():
            out.update(shape(item, f"{path}.{key}"))
        return out
    if isinstance(value, list):
        out = {path or ".": "array"}
        for item in value:
            for key, kind in shape(item, f"{path}[]").items():
                if out.get(key, kind) != kind:
                    kind = "mixed"
                out[key] = kind
        return out
    kind = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}[type(value)]
    return {path or ".": kind}


def body_of(response: requests.Response) -> Any:
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == "application/json" and response.content:
        return response.json()
    return None


def facts(response: requests.Response) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return {
        "status": response.status_code,
        "media": headers.get("content-type", "").split(";")[0].strip() if response.content else "",
        "present": {h for h in PRESENCE_HEADERS if h in headers},
        "values": {h: headers.get(h) for h in VALUE_HEADERS},
        "shape": shape(body_of(response)) if body_of(response) is not None else {},
    }


def compare(local: requests.Response, real: requests.Response,
            values: Callable[[Any], Any] | None = None) -> list[str]:
    """Differences as short sentences, LocalCloud first, real second."""
    a, b = facts(local), facts(real)
    diffs = []
    if a["status"] != b["status"]:
        diffs.append(f"status {a['status']} vs {b['status']}")
    if a["media"] != b["media"]:
        diffs.append(f"content-type {a['media'] or '-'} vs {b['media'] or '-'}")
    for header in sorted(a["present"] ^ b["present"]):
        diffs.append(f"header {header} {'only local' if header in a['present'] else 'only real'}")
    for header in VALUE_HEADERS:
        if a["values"][header] != b["values"][header]:
            diffs.append(f"header {header} {a['values'][header]} vs {b['values'][header]}")
    missing_roots: list[str] = []  # a subtree on one side only is one difference, not one per key
    for key in sorted(set(a["shape"]) | set(b["shape"])):
        left, right = a["shape"].get(key, "absent"), b["shape"].get(key, "absent")
        if left == right or any(key.startswith(root) and key[len(root):][:1] in (".", "[")
                                for root in missing_roots):
            continue
        if "absent" in (left, right):
            missing_roots.append(key)
        diffs.append(f"{key} {left} vs {right}")
    if values is not None:
        left, right = values(body_of(local)), values(body_of(real))
        if left != right:
            diffs.append(f"values {left!r} vs {right!r}")
    return diffs
