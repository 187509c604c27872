"""The VM endpoint's WSGI application.

Every VM call carries ``Authorization: Bearer <token>`` (see Utilities/VMTokens.py) and names its
own VM in the path; a VM can read or write nothing of another VM.

    POST /vm/v1/<vm>/heartbeat            body: optional load text      -> 204
    PUT  /vm/v1/<vm>/logs/<name>          body: the log (replaces it)   -> 204
    PUT  /vm/v1/<vm>/shutdown_message     body: "<code> <text>"         -> 204
    GET  /vm/v1/<vm>/context/<name>       contextualization file        -> 200
                                          (``shutdowntime``: end of the VM's lifetime, unix s)
    GET  /health                          no authentication             -> 200

Refusals: 401 missing, malformed, forged or expired token; 403 token of another VM; 404 unknown
path, file or VM; 405 wrong method; 400 malformed body; 413 over a size limit; 429 heartbeats
too frequent; 503 store unavailable or too many requests (a VM retries these).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from JenniferDIRAC.WorkloadManagementSystem.Utilities.VMTokens import (
    TOKEN_GRACE_SECONDS,
    VM_NAME_PATTERN,
    TokenAuthority,
    TokenError,
    TokenExpired,
    VMToken,
)

from .store import StoreError, UnknownVM, VMRecordStore

API_PREFIX = "/vm/v1/"
_PATH = re.compile(
    r"^/vm/v1/(?P<vm>[^/]+)/(?:(?P<simple>heartbeat|shutdown_message)|(?P<area>logs|context)/(?P<name>[^/]+))$"
)
#: Log and context file names: no path separators, no leading dot, bounded length.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_SHUTDOWN = re.compile(r"^\s*(?P<code>[1-7][0-9][0-9])(?:\s+(?P<text>[^\x00-\x08\x0a-\x1f\x7f]*?))?\s*$")
_HEARTBEAT_BODY_BYTES = 256
_SHUTDOWN_BODY_BYTES = 1024


@dataclass(frozen=True)
class EndpointLimits:
    max_upload_bytes: int = 1048576  # one log upload
    max_bytes_per_vm: int = 4194304  # all logs of one VM together
    max_logs_per_vm: int = 8  # distinct log names per VM
    min_heartbeat_seconds: float = 10.0  # heartbeats closer together are refused (429)
    max_concurrent_requests: int = 64  # beyond this, 503 and the VM retries


Log = Callable[[str, str], None]  # (level: "info" | "warn" | "error", message)


def _quiet(level: str, message: str) -> None:
    pass


class VMEndpointApp:
    """WSGI callable. Thread-safe: the server runs one thread per request."""

    def __init__(
        self,
        authority: TokenAuthority,
        store: VMRecordStore,
        limits: EndpointLimits | None = None,
        context_dir: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        log: Log = _quiet,
    ):
        self.authority = authority
        self.store = store
        self.limits = limits or EndpointLimits()
        self.context_dir = Path(context_dir).resolve() if context_dir else None
        self.clock = clock
        self.log = log
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrent_requests)
        self._lock = threading.Lock()
        self._vm_locks: dict[str, threading.Lock] = {}
        self._log_sizes: dict[str, dict[str, int]] = {}
        self._last_heartbeat: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self.counters: dict[int, int] = {}

    def set_authority(self, authority: TokenAuthority) -> None:
        """Swap in new secrets (rotation) without a restart."""
        self.authority = authority

    def forget_vms_older_than(self, seconds: float) -> int:
        """Drop per-VM bookkeeping not used for `seconds`; returns how many VMs were dropped."""
        cutoff = self.clock() - seconds
        with self._lock:
            stale = [vm for vm, last in self._last_seen.items() if last < cutoff]
            for vm in stale:
                self._last_seen.pop(vm, None)
                self._last_heartbeat.pop(vm, None)
                self._log_sizes.pop(vm, None)
                self._vm_locks.pop(vm, None)
        return len(stale)

    # --- WSGI ------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        if not self._slots.acquire(blocking=False):
            response = self._error(503, "endpoint busy, retry later")
            response.headers["Retry-After"] = "5"
        else:
            try:
                response = self._respond(Request(environ))
            finally:
                self._slots.release()
        with self._lock:
            self.counters[response.status_code] = self.counters.get(response.status_code, 0) + 1
        return response(environ, start_response)

    @staticmethod
    def _error(status: int, message: str) -> Response:
        return Response(message + "\n", status=status, mimetype="text/plain")

    def _respond(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except HTTPException as exc:  # e.g. werkzeug's 413 from a too long chunked body
            return self._error(exc.code or 400, exc.description or exc.name)
        except UnknownVM:
            return self._error(404, "unknown VM")
        except StoreError as exc:
            self.log("error", f"store failed: {exc}")
            return self._error(503, "storage unavailable, retry later")
        except Exception as exc:  # never let a request take the endpoint down
            self.log("error", f"unexpected {type(exc).__name__} on {request.method} {request.path[:200]!r}")
            return self._error(500, "internal error")

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/health":
            if request.method not in ("GET", "HEAD"):
                return self._error(405, "method not allowed")
            return Response("ok\n", mimetype="text/plain")
        match = _PATH.match(path)
        if not match or not VM_NAME_PATTERN.match(match.group("vm")):
            return self._error(404, "not found")
        vm_name = match.group("vm")
        name = match.group("name")
        if name is not None and not SAFE_NAME.match(name):
            return self._error(404, "not found")
        operation = match.group("simple") or match.group("area")
        allowed = {"heartbeat": "POST", "shutdown_message": "PUT", "logs": "PUT", "context": "GET"}[operation]
        if request.method != allowed:
            response = self._error(405, "method not allowed")
            response.headers["Allow"] = allowed
            return response

        refusal, token = self._authenticate(request, vm_name)
        if refusal is not None:
            return refusal
        if operation == "heartbeat":
            return self._heartbeat(request, vm_name)
        if operation == "shutdown_message":
            return self._shutdown_message(request, vm_name)
        if operation == "logs":
            return self._store_log(request, vm_name, name)
        return self._context(token, name)

    def _authenticate(self, request: Request, vm_name: str) -> tuple[Response | None, VMToken | None]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = self._error(401, "a bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="jdirac-vm"'
            return response, None
        try:
            verified = self.authority.verify(token.strip())
        except TokenExpired:
            self.log("warn", f"expired token presented for {vm_name}")
            return self._error(401, "token expired"), None
        except TokenError:
            self.log("warn", f"invalid token presented for {vm_name} from {request.remote_addr}")
            return self._error(401, "invalid token"), None
        if verified.vm_name != vm_name:
            self.log("warn", f"token of {verified.vm_name} used for {vm_name} from {request.remote_addr}")
            return self._error(403, "this token is not valid for this VM"), None
        return None, verified

    def _body(self, request: Request, limit: int) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise _TooLarge(limit)
        data = request.stream.read(limit + 1)
        if len(data) > limit:
            raise _TooLarge(limit)
        return data

    def _vm_lock(self, vm_name: str) -> threading.Lock:
        with self._lock:
            return self._vm_locks.setdefault(vm_name, threading.Lock())

    def _heartbeat(self, request: Request, vm_name: str) -> Response:
        try:
            body = self._body(request, _HEARTBEAT_BODY_BYTES)
        except _TooLarge as exc:
            return self._error(413, str(exc))
        load = body.decode("utf-8", "replace").strip()
        load = "".join(c for c in load if c.isprintable())[:128]
        now = self.clock()
        with self._vm_lock(vm_name):
            last = self._last_heartbeat.get(vm_name)
            if last is not None and now - last < self.limits.min_heartbeat_seconds:
                return self._error(429, f"at most one heartbeat every {self.limits.min_heartbeat_seconds:g} s")
            self.store.add_heartbeat(vm_name, dt.datetime.fromtimestamp(now, dt.timezone.utc), load)
            with self._lock:
                self._last_heartbeat[vm_name] = now
        self._touch(vm_name)
        return Response(status=204)

    def _shutdown_message(self, request: Request, vm_name: str) -> Response:
        try:
            body = self._body(request, _SHUTDOWN_BODY_BYTES)
        except _TooLarge as exc:
            return self._error(413, str(exc))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._error(400, "the shutdown message must be UTF-8 text")
        match = _SHUTDOWN.match(text)
        if not match:
            return self._error(400, 'expected "<code 100-799> <text>", e.g. "200 Intended work completed ok"')
        code = int(match.group("code"))
        message = (match.group("text") or "")[:512]
        self.store.set_shutdown_message(vm_name, code, message)
        self.log("info", f"{vm_name} shutdown message {code} {message[:80]}")
        self._touch(vm_name)
        return Response(status=204)

    def _store_log(self, request: Request, vm_name: str, name: str) -> Response:
        try:
            content = self._body(request, self.limits.max_upload_bytes)
        except _TooLarge as exc:
            return self._error(413, str(exc))
        with self._vm_lock(vm_name):
            sizes = self._log_sizes.get(vm_name)
            if sizes is None:
                sizes = dict(self.store.log_sizes(vm_name))
            if name not in sizes and len(sizes) >= self.limits.max_logs_per_vm:
                return self._error(413, f"at most {self.limits.max_logs_per_vm} logs per VM")
            total = sum(size for kind, size in sizes.items() if kind != name) + len(content)
            if total > self.limits.max_bytes_per_vm:
                return self._error(413, f"at most {self.limits.max_bytes_per_vm} bytes of logs per VM")
            self.store.store_log(vm_name, name, content)
            sizes[name] = len(content)
            with self._lock:
                self._log_sizes[vm_name] = sizes
        self._touch(vm_name)
        return Response(status=204)

    def _touch(self, vm_name: str) -> None:
        with self._lock:
            self._last_seen[vm_name] = self.clock()

    def _context(self, token: VMToken, name: str) -> Response:
        if name == "shutdowntime":
            # Machine/Job Features (HSF-TN-2016-02): when the VM's lifetime ends, unix seconds.
            return Response(f"{token.expires - TOKEN_GRACE_SECONDS}\n", mimetype="text/plain")
        if self.context_dir is None:
            return self._error(404, "no contextualization files")
        path = (self.context_dir / name).resolve()
        if path.parent != self.context_dir or not path.is_file():
            return self._error(404, "no such contextualization file")
        try:
            data = path.read_bytes()
        except OSError:
            return self._error(404, "no such contextualization file")
        return Response(data, mimetype="application/octet-stream")


class _TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"body over the limit of {limit} bytes")
