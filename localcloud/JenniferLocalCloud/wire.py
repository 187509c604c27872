"""HTTP plumbing shared by the services: routing, JSON bodies, per-request context."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .errors import BadRequest

if TYPE_CHECKING:
    from .identity import Token


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    service: str
    template: str
    token: "Token | None" = None
    microversion: tuple[int, int] | None = None
    base_url: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def args(self):
        return self.request.args

    def json(self) -> dict[str, Any]:
        data = self.request.get_data(cache=True)
        if not data:
            return {}
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise BadRequest(f"Malformed request body: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("Malformed request body: expected a JSON object")
        return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, mimetype="application/json")


def empty_response(status: int = 204) -> Response:
    return Response(b"", status=status)


Handler = Callable[..., Response]


class ServiceAPI:
    """Base of each service's HTTP part: a name, a URL prefix, rules and an error body shape."""

    name = ""
    prefix = ""
    # Endpoints that need no token (version discovery, authentication itself).
    public: frozenset[str] = frozenset()

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def error_body(self, code: int, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    def handler(self, endpoint: str) -> Handler:
        return getattr(self, endpoint)

    def prepare(self, call: Call) -> None:
        """Hook run before the handler (e.g. microversion negotiation)."""

    def finish(self, call: Call, response: Response) -> None:
        """Hook run on every response of this service, errors included."""
        for key, value in call.extra_headers.items():
            response.headers[key] = value
        if "x-openstack-request-id" not in response.headers:
            response.headers["x-openstack-request-id"] = new_request_id()

    def unmatched(self, method: str, path: str, status: int, allowed: list[str]) -> Response:
        """The answer to a path (404) or method (405) this service does not serve."""
        response = json_response({"error": {"code": status, "message": f"{method} {path}"}}, status)
        response.headers["x-openstack-request-id"] = new_request_id()
        return response


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def html_response(status: int, title: str, text: str, headers: dict[str, str] | None = None) -> Response:
    body = f"<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  {text}\n </body>\n</html>"
    response = Response(body, status=status, headers=headers or {}, mimetype="text/html")
    response.headers["x-openstack-request-id"] = new_request_id()
    return response


def route(path: str, endpoint: str, *methods: str) -> Rule:
    return Rule(path, endpoint=endpoint, methods=list(methods), strict_slashes=False)
