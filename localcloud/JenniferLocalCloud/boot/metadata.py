"""Host side of a LocalCloud VM's metadata service: what Nova's would tell this one VM.

The VM reaches ``169.254.169.254:80`` as in a real cloud: ``guestnet`` puts the address on the
VM's loopback and relays each connection to a Unix socket in that VM's own ``net/`` directory,
where the host answers with this module. The socket belongs to one VM, so a request can only
ever get that VM's documents (fixed when it boots), whatever it asks.

The VM is hostile: the server speaks only what cloud-init and curl use (one GET or HEAD request
per connection, ``Connection: close``), reads at most ``MAX_REQUEST_HEAD`` bytes of request head
within ``REQUEST_TIMEOUT`` seconds, runs on the network bridge's event loop (no thread per
connection) and counts against the bridge's per-VM connection limit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from .sandbox import InstanceInfo, hostname_for

ADDRESS = ("169.254.169.254", 80)
MAX_REQUEST_HEAD = 8192
REQUEST_TIMEOUT = 10.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large"}


@dataclass(frozen=True)
class Document:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def documents(info: InstanceInfo) -> dict[str, Document]:
    """Every path the service answers, OpenStack-style and EC2-style, for one VM."""
    hostname = hostname_for(info.name)
    has_user_data = bool(info.user_data)

    def listing(*names: str) -> Document:
        return Document("\n".join(names).encode())

    docs = {
        "/": listing("latest", "openstack"),
        "/openstack": listing("latest"),
        "/openstack/latest": listing("meta_data.json", *(["user_data"] if has_user_data else [])),
        "/openstack/latest/meta_data.json": Document(json.dumps(info.meta_data()).encode(),
                                                     "application/json"),
        "/latest": listing("meta-data/", *(["user-data"] if has_user_data else [])),
        "/latest/meta-data": listing("hostname", "instance-id", "local-hostname", "placement/"),
        "/latest/meta-data/hostname": listing(hostname),
        "/latest/meta-data/instance-id": listing(info.instance_id),
        "/latest/meta-data/local-hostname": listing(hostname),
        "/latest/meta-data/placement": listing("availability-zone"),
        "/latest/meta-data/placement/availability-zone": listing(info.availability_zone),
    }
    if has_user_data:  # Nova answers 404 for a server booted without user data
        docs["/openstack/latest/user_data"] = Document(info.user_data, "application/octet-stream")
        docs["/latest/user-data"] = Document(info.user_data, "application/octet-stream")
    return docs


def respond(docs: dict[str, Document], head: bytes) -> tuple[int, Document, bool]:
    """(status, document, send the body) for one request head."""
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return 400, Document(b"bad request\n"), True
    method, target = parts[0], parts[1].split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return 405, Document(b"only GET and HEAD\n"), True
    path = target.rstrip("/") or "/"
    document = docs.get(path)
    if document is None:
        return 404, Document(b"not found\n"), method == "GET"
    return 200, document, method == "GET"


async def serve(docs: dict[str, Document], reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Answer one request on one connection, then close it."""
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except (asyncio.LimitOverrunError, ValueError):
            status, document, with_body = 431, Document(b"request head too large\n"), True
        else:
            status, document, with_body = respond(docs, head)
        writer.write(
            (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {document.content_type}\r\n"
             f"Content-Length: {len(document.body)}\r\n"
             + ("Allow: GET, HEAD\r\n" if status == 405 else "")
             + "Connection: close\r\n\r\n").encode()
            + (document.body if with_body else b""))
        await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
