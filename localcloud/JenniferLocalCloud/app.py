"""The WSGI application that routes to the services, and the threaded loopback server.

Every request passes, in order: routing -> counters -> latency and fault rules ->
microversion / token checks -> the service handler (a "lost response" fault runs the
handler and then drops the answer). Faults therefore live here once, not in the handlers.
"""

from __future__ import annotations

import logging
import socket
import threading
import traceback

from werkzeug.exceptions import MethodNotAllowed, NotFound as RouteNotFound
from werkzeug.routing import Map, Rule, Submount
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .counters import RequestCounters
from .errors import LocalCloudError
from .faults import FaultInjector
from .identity import AUTH_REQUIRED, IdentityAPI, IdentityState
from .wire import Call, ServiceAPI, empty_response, json_response

log = logging.getLogger(__name__)


class LocalCloudApp:
    def __init__(self, services: list[ServiceAPI], identity: IdentityState, counters: RequestCounters,
                 faults: FaultInjector) -> None:
        self.services = {svc.name: svc for svc in services}
        self.identity = identity
        self.identity_api = next(s for s in services if isinstance(s, IdentityAPI))
        self.counters = counters
        self.faults = faults
        mounts = []
        for svc in services:
            rules = [
                Rule(r.rule, endpoint=f"{svc.name}:{r.endpoint}", methods=r.methods,
                     strict_slashes=False)
                for r in svc.rules()
            ]
            mounts.append(Submount(svc.prefix, rules))
        self.url_map = Map(mounts, strict_slashes=False, merge_slashes=False)

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self.dispatch(request, environ)
        key = environ.get("localcloud.route")
        if key is not None and not response.is_streamed:
            self.counters.record_bytes(*key, len(response.get_data()))
        return response(environ, start_response)

    def dispatch(self, request: Request, environ) -> Response:
        adapter = self.url_map.bind_to_environ(environ)
        method = request.method
        try:
            rule, args = adapter.match(return_rule=True)
        except (RouteNotFound, MethodNotAllowed) as exc:
            service = request.path.strip("/").split("/", 1)[0] or "root"
            self.counters.record(service, method, "<unmatched>")
            status = 405 if isinstance(exc, MethodNotAllowed) else 404
            allowed = sorted(exc.valid_methods or []) if isinstance(exc, MethodNotAllowed) else []
            svc = self.services.get(service)
            if svc is not None:  # each service answers as its real counterpart does
                return svc.unmatched(method, request.path, status, allowed)
            return json_response({"error": {"code": status, "message": f"{method} {request.path}"}}, status)
        service_name, endpoint = rule.endpoint.split(":", 1)
        svc = self.services[service_name]
        template = rule.rule[len(svc.prefix):] or "/"
        self.counters.record(service_name, method, template)
        environ["localcloud.route"] = (service_name, method, template)

        self.faults.wait(self.faults.latency)
        call = Call(request=request, service=service_name, template=template,
                    base_url=request.host_url.rstrip("/"))
        fault = self.faults.before_request(service_name, method, template)
        if fault is not None:
            if fault.kind == "latency":
                self.faults.wait(fault.seconds)
            elif fault.kind == "http_error":
                message = fault.message or _default_message(fault.status)
                return self._error(svc, call, fault.status, message)
            elif fault.kind in ("timeout", "drop"):
                if fault.kind == "timeout":
                    self.faults.wait(fault.seconds)
                return _drop(environ)
            elif fault.kind == "garble":
                return Response('{"servers": [{"id": ', status=200, content_type="application/json")
            elif fault.kind == "lost_response":
                self.faults.wait(fault.delay)
                self._handle(svc, call, rule, endpoint, args)
                self.faults.wait(fault.seconds)
                return _drop(environ)
            elif fault.kind == "expire_token":
                token_id = request.headers.get("X-Auth-Token")
                if token_id:
                    try:
                        self.identity.revoke(token_id)
                    except LocalCloudError:
                        pass
                return self._error(svc, call, 401, AUTH_REQUIRED)
        return self._handle(svc, call, rule, endpoint, args)

    def _handle(self, svc: ServiceAPI, call: Call, rule: Rule, endpoint: str, args: dict) -> Response:
        request = call.request
        try:
            svc.prepare(call)
            if endpoint not in svc.public:
                call.token = self.identity.validate(request.headers.get("X-Auth-Token"))
            response = svc.handler(endpoint)(call, **args)
        except LocalCloudError as exc:
            return self._error(svc, call, exc.code, exc.message)
        except Exception:  # a bug in the emulator: answer like Nova's generic fault, keep the trace
            log.error("LocalCloud handler %s failed:\n%s", rule.endpoint, traceback.format_exc())
            return self._error(svc, call, 500, "Unexpected API Error. Please report this.")
        svc.finish(call, response)
        return response

    def _error(self, svc: ServiceAPI, call: Call, status: int, message: str) -> Response:
        if status == 401:
            body = self.identity_api.error_body(401, message)
            headers = {"WWW-Authenticate": f'Keystone uri="{call.base_url}/identity"'}
        else:
            body, headers = svc.error_body(status, message), {}
        response = json_response(body, status=status, headers=headers)
        svc.finish(call, response)
        return response


def _default_message(status: int) -> str:
    if status == 503:
        return "Service Unavailable: the service is temporarily unable to handle the request."
    return "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/."


def _drop(environ) -> Response:
    """Close the client connection without an answer (what a crashed proxy does)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return empty_response(500)


class _QuietHandler(WSGIRequestHandler):
    """One log line per request would drown the tests and benchmarks."""

    def log_request(self, *args, **kwargs) -> None:
        pass

    def log(self, type: str, message: str, *args) -> None:
        if type == "error":
            log.debug(message, *args)


class LoopbackServer:
    """A threaded werkzeug server on ``host`` (random port by default) in a daemon thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True,
                                                  request_handler=_QuietHandler)
        self.host = host
        self.port = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"localcloud-{self.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
