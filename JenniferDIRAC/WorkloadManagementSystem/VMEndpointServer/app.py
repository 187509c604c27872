"""The VM endpoint's ASGI application (Starlette requests and responses; served by uvicorn, see
server.py).

Every VM call carries ``Authorization: Bearer <token>`` (see Security/VMTokens.py) and names its
own VM in the path; a VM can read or write nothing of another VM.

    POST /vm/v1/<vm>/heartbeat            body: optional load text      -> 204 (accepted: written,
                                          or buffered for the next batch, heartbeats.py)
    PUT  /vm/v1/<vm>/logs/<name>          body: the log (replaces it)   -> 204
    PUT  /vm/v1/<vm>/shutdown_message     body: "<code> <text>"         -> 204 (the first one is kept);
                                          under the bootstrap token only code 510 (fetch failed)
    GET  /vm/v1/<vm>/context/<name>       contextualization file        -> 200
                                          (``shutdowntime``: end of the VM's lifetime, unix s)
    GET  /vm/v1/<vm>/bootstrap            bootstrap token (scope jdb1)  -> 200 the report token
                                          and the pilot wrapper, once; 410 to every later call
                                          (recorded in VMDB as an incident of that VM)
    GET  /health                          no authentication, no limits  -> 200

Refusals: 400 malformed or incomplete body; 401 missing, malformed, forged or expired token; 403
token of another VM; 404 unknown path, file or VM; 405 wrong method; 408 body not received within
BodyTimeout; 409 a different shutdown message was already stored; 410 the VM is deleted or powered
off (writes only); 413 over a size limit; 429 this VM sends too much (too many at once, too fast,
heartbeats too close together); 503 store unavailable, heartbeat buffer full or too many requests
(a VM retries these).

Order of the checks, cheapest first, so that what a hostile VM sends costs the least: path and
method, token (HMAC), per-VM admission, global admission, body (size and total deadline), the
VM's record (is it still alive?), the write. Database calls run in a bounded pool of worker
threads; waiting connections and bodies cost no thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response

from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import (
    TOKEN_GRACE_SECONDS,
    VM_NAME_PATTERN,
    TokenAuthority,
    TokenError,
    TokenExpired,
    VMToken,
    BOOTSTRAP_PREFIX,
    TOKEN_PREFIX,
)
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import BOOTSTRAP_FAILED_CODE
from JenniferDIRAC.WorkloadManagementSystem.Security.VMBootstrap import SealError, unseal

from .body import BodyError, read_body
from .heartbeats import BufferFull, HeartbeatBuffer
from .limits import EndpointLimits, PerVMAdmission, Refused
from .refusals import Log, RefusalLog
from .shutdownmessage import MalformedShutdownMessage, parse_shutdown_message
from .store import StoreError, UnknownVM, VMRecordStore, VMStatus

__all__ = ["API_PREFIX", "SAFE_NAME", "EndpointLimits", "VMEndpointApp"]

API_PREFIX = "/vm/v1/"
#: Always used with fullmatch: ``$`` would accept a trailing newline.
_PATH = re.compile(
    r"/vm/v1/(?P<vm>[^/]+)/(?:(?P<simple>heartbeat|shutdown_message|bootstrap)|(?P<area>logs|context)/(?P<name>[^/]+))"
)
#: Log and context file names: no path separators, no leading dot, bounded length.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_METHODS = {"heartbeat": "POST", "shutdown_message": "PUT", "logs": "PUT", "context": "GET", "bootstrap": "GET"}
_HEARTBEAT_BODY_BYTES = 256
_SHUTDOWN_BODY_BYTES = 1024


def _quiet(level: str, message: str) -> None:
    pass


def _bearer(headers: Headers) -> str:
    return headers.get("authorization", "").partition(" ")[2].strip()


def _text(status: int, message: str, **headers: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers or None)


class _Refusal(Exception):
    """Ends a request early with this response."""

    def __init__(self, response: Response):
        self.response = response


class VMEndpointApp:
    """ASGI callable. Runs on one event loop; only the database calls leave it (worker threads)."""

    def __init__(
        self,
        authority: TokenAuthority,
        store: VMRecordStore,
        limits: EndpointLimits | None = None,
        context_dir: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        log: Log = _quiet,
        heartbeats: HeartbeatBuffer | None = None,
    ):
        self.authority = authority
        self.store = store
        self.heartbeats = heartbeats  # None: each heartbeat written before it is answered
        self.limits = limits or EndpointLimits()
        self.context_dir = Path(context_dir).resolve() if context_dir else None
        self.clock = clock
        self.log = log
        self.refusals = RefusalLog(log, self.limits.refusal_log_seconds)
        self.admission = PerVMAdmission(self.limits)
        self.in_progress = 0
        self.counters: dict[int, int] = {}
        self._lock = threading.Lock()  # the per-VM dicts below are also read by the agent's thread
        self._vm_locks: dict[str, asyncio.Lock] = {}
        self._log_sizes: dict[str, dict[str, int]] = {}
        self._last_heartbeat: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self._store_limiter: CapacityLimiter | None = None

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
        self.admission.forget_idle()
        return len(stale)

    # --- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = await self._respond(scope, receive)
        with self._lock:
            self.counters[response.status_code] = self.counters.get(response.status_code, 0) + 1
        await response(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Event-loop-bound objects belong to the loop now starting (a restarted server
                # runs a new loop).
                with self._lock:
                    self._vm_locks.clear()
                self._store_limiter = None
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.heartbeats is not None:  # the requests answered 204 are all buffered now
                    await anyio.to_thread.run_sync(self.heartbeats.flush)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, scope, receive) -> Response:
        method = scope["method"]
        path = scope["path"]
        headers = Headers(scope=scope)
        body_done = False

        async def tracked_receive():
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        try:
            response = await self._dispatch(method, path, headers, scope, tracked_receive)
        except _Refusal as refusal:
            response = refusal.response
        except BodyError as exc:
            response = _text(exc.status, str(exc))
        except UnknownVM:
            response = _text(404, "unknown VM")
        except StoreError as exc:
            self.log("error", f"store failed: {exc}")
            response = _text(503, "storage unavailable, retry later", **{"Retry-After": "30"})
        except Exception as exc:  # never let a request take the endpoint down
            self.log("error", f"unexpected {type(exc).__name__} on {method} {path[:200]!r}")
            response = _text(500, "internal error")
        declares_body = headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers
        if declares_body and not body_done:
            # Answered before the whole body was read: close rather than read the rest.
            response.headers["Connection"] = "close"
        return response

    async def _dispatch(self, method: str, path: str, headers: Headers, scope, receive) -> Response:
        if path == "/health":
            if method not in ("GET", "HEAD"):
                return _text(405, "method not allowed", Allow="GET, HEAD")
            return _text(200, "ok")
        match = _PATH.fullmatch(path)
        if not match or not VM_NAME_PATTERN.fullmatch(match.group("vm")):
            return _text(404, "not found")
        vm_name, name = match.group("vm"), match.group("name")
        if name is not None and not SAFE_NAME.fullmatch(name):
            return _text(404, "not found")
        operation = match.group("simple") or match.group("area")
        if method != _METHODS[operation]:
            return _text(405, "method not allowed", Allow=_METHODS[operation])

        scope_wanted = BOOTSTRAP_PREFIX if operation == "bootstrap" else TOKEN_PREFIX
        if operation == "shutdown_message" and _bearer(headers).startswith(BOOTSTRAP_PREFIX + "."):
            scope_wanted = BOOTSTRAP_PREFIX  # a VM whose fetch failed holds only its bootstrap token
        token = self._authenticate(headers, vm_name, scope.get("client"), scope_wanted)
        self._admit(vm_name)
        try:
            if operation == "bootstrap":
                return await self._bootstrap(vm_name, headers.get("authorization", "").partition(" ")[2].strip(),
                                             scope.get("client"))
            if operation == "context":
                return await self._context(token, name)
            if operation == "heartbeat":
                body = await read_body(receive, headers, _HEARTBEAT_BODY_BYTES, self.limits.body_timeout_seconds)
                return await self._heartbeat(vm_name, body)
            if operation == "shutdown_message":
                body = await read_body(receive, headers, _SHUTDOWN_BODY_BYTES, self.limits.body_timeout_seconds)
                return await self._shutdown_message(vm_name, body, token.scope == BOOTSTRAP_PREFIX)
            body = await read_body(receive, headers, self.limits.max_upload_bytes, self.limits.body_timeout_seconds)
            return await self._store_log(vm_name, name, body)
        finally:
            self.in_progress -= 1
            self.admission.release(vm_name)

    # --- admission -------------------------------------------------------------------------------
    def _authenticate(self, headers: Headers, vm_name: str, client, scope: str = TOKEN_PREFIX) -> VMToken:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        where = client[0] if client else "?"
        if scheme.lower() != "bearer" or not token:
            raise _Refusal(_text(401, "a bearer token is required", **{"WWW-Authenticate": 'Bearer realm="jdirac-vm"'}))
        try:
            verified = self.authority.verify(token, scope)
        except TokenExpired:
            self.refusals.refused("expired token", f"expired token presented for {vm_name} from {where}")
            raise _Refusal(_text(401, "token expired")) from None
        except TokenError:
            self.refusals.refused("invalid token", f"invalid token presented for {vm_name} from {where}")
            raise _Refusal(_text(401, "invalid token")) from None
        if verified.vm_name != vm_name:
            self.refusals.refused(
                "token of another VM", f"token of {verified.vm_name} used for {vm_name} from {where}"
            )
            raise _Refusal(_text(403, "this token is not valid for this VM"))
        return verified

    def _admit(self, vm_name: str) -> None:
        # "Busy" is decided first: a request the endpoint had no room for costs the VM nothing,
        # or a VM retrying through a busy spell would use up its own rate and get 429s.
        if self.in_progress >= self.limits.max_concurrent_requests:
            self.refusals.refused("endpoint busy", f"endpoint busy: {self.in_progress} requests in progress")
            raise _Refusal(_text(503, "endpoint busy, retry later", **{"Retry-After": "5"}))
        try:
            self.admission.admit(vm_name)
        except Refused as exc:
            self.refusals.refused("per-VM limit", f"{vm_name}: {exc.reason}")
            raise _Refusal(_text(429, exc.reason, **{"Retry-After": str(exc.retry_after)})) from None
        self.in_progress += 1

    # --- the VM's record -------------------------------------------------------------------------
    async def _in_thread(self, function, *args):
        if self._store_limiter is None:
            self._store_limiter = CapacityLimiter(self.limits.store_threads)
        return await anyio.to_thread.run_sync(function, *args, limiter=self._store_limiter)

    def _vm_lock(self, vm_name: str) -> asyncio.Lock:
        with self._lock:
            return self._vm_locks.setdefault(vm_name, asyncio.Lock())

    async def _require_alive(self, vm_name: str) -> VMStatus:
        status = await self._in_thread(self.store.vm_status, vm_name)
        if status.ended:
            self.refusals.refused("VM ended", f"write for {vm_name}, which is {status.ended}")
            raise _Refusal(_text(410, f"this VM is {status.ended}; nothing more is recorded"))
        return status

    def _touch(self, vm_name: str) -> None:
        with self._lock:
            self._last_seen[vm_name] = self.clock()

    # --- operations ------------------------------------------------------------------------------
    async def _heartbeat(self, vm_name: str, body: bytes) -> Response:
        load = body.decode("utf-8", "replace").strip()
        load = "".join(c for c in load if c.isprintable())[:128]
        async with self._vm_lock(vm_name):
            now = self.clock()
            last = self._last_heartbeat.get(vm_name)
            if last is not None and now - last < self.limits.min_heartbeat_seconds:
                self.refusals.refused("heartbeat too early", f"{vm_name}: heartbeat too early")
                wait = max(1, math.ceil(self.limits.min_heartbeat_seconds - (now - last)))
                return _text(429, f"at most one heartbeat every {self.limits.min_heartbeat_seconds:g} s",
                             **{"Retry-After": str(wait)})
            await self._require_alive(vm_name)  # per request, before buffering: 410 stays exact
            when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
            if self.heartbeats is None:
                await self._in_thread(self.store.add_heartbeat, vm_name, when, load)
            else:
                try:
                    self.heartbeats.add(vm_name, when, load)
                except BufferFull as exc:
                    self.refusals.refused("heartbeat buffer full", f"heartbeat of {vm_name} refused: {exc}")
                    return _text(503, "heartbeats are waiting for storage, retry later", **{"Retry-After": "30"})
            with self._lock:
                self._last_heartbeat[vm_name] = now
        self._touch(vm_name)
        return Response(status_code=204)

    async def _shutdown_message(self, vm_name: str, body: bytes, bootstrap_token: bool = False) -> Response:
        try:
            message = parse_shutdown_message(body)
        except MalformedShutdownMessage as exc:
            return _text(400, str(exc))
        if bootstrap_token and message.code != BOOTSTRAP_FAILED_CODE:
            self.refusals.refused("bootstrap token", f"{vm_name}: shutdown code {message.code} under its bootstrap token")
            return _text(403, f"a bootstrap token may only report a failed bootstrap (code {BOOTSTRAP_FAILED_CODE})")
        async with self._vm_lock(vm_name):
            status = await self._require_alive(vm_name)
            if status.shutdown_code is not None:
                if (status.shutdown_code, status.shutdown_message) == (message.code, message.text):
                    return Response(status_code=204)  # the same message again (a retry)
                return _text(409, f"a shutdown message ({status.shutdown_code}) was already recorded; the first one is kept")
            # Whoever reads the shutdown message must also see the heartbeats answered before it
            # (the lifecycle tells a failed boot by "no heartbeat"): write this VM's first.
            if self.heartbeats is not None and self.heartbeats.holds(vm_name):
                if not await self._in_thread(self.heartbeats.flush):
                    return _text(503, "heartbeats are waiting for storage, retry later", **{"Retry-After": "30"})
            await self._in_thread(self.store.set_shutdown_message, vm_name, message.code, message.text)
        self.log("info", f"{vm_name} shutdown message {message.code} {message.text[:80]}")
        self._touch(vm_name)
        return Response(status_code=204)

    async def _store_log(self, vm_name: str, name: str, content: bytes) -> Response:
        async with self._vm_lock(vm_name):
            await self._require_alive(vm_name)
            sizes = self._log_sizes.get(vm_name)
            if sizes is None:
                sizes = dict(await self._in_thread(self.store.log_sizes, vm_name))
            if name not in sizes and len(sizes) >= self.limits.max_logs_per_vm:
                return _text(413, f"at most {self.limits.max_logs_per_vm} logs per VM")
            total = sum(size for kind, size in sizes.items() if kind != name) + len(content)
            if total > self.limits.max_bytes_per_vm:
                return _text(413, f"at most {self.limits.max_bytes_per_vm} bytes of logs per VM")
            await self._in_thread(self.store.store_log, vm_name, name, content)
            sizes[name] = len(content)
            with self._lock:
                self._log_sizes[vm_name] = sizes
        self._touch(vm_name)
        return Response(status_code=204)

    async def _bootstrap(self, vm_name: str, bootstrap_token: str, client) -> Response:
        """The first call gets the sealed wrapper (then gone from VMDB); any later one is a
        replay: refused, and recorded by the store as an incident of this VM."""
        async with self._vm_lock(vm_name):
            sealed = await self._in_thread(self.store.claim_bootstrap, vm_name)
        if sealed is None:
            where = client[0] if client else "?"
            self.refusals.refused("bootstrap replayed", f"bootstrap token of {vm_name} presented again from {where}")
            return _text(410, "this VM's bootstrap was already fetched; the incident is recorded")
        try:
            body = unseal(bootstrap_token, vm_name, sealed)
        except SealError as exc:
            self.log("error", str(exc))
            return _text(500, "internal error")
        self.log("info", f"{vm_name} fetched its bootstrap")
        self._touch(vm_name)
        return Response(body, media_type="application/octet-stream", headers={"Cache-Control": "no-store"})

    async def _context(self, token: VMToken, name: str) -> Response:
        if name == "shutdowntime":
            # Machine/Job Features (HSF-TN-2016-02): when the VM's lifetime ends, unix seconds.
            return _text(200, f"{token.expires - TOKEN_GRACE_SECONDS}")
        if self.context_dir is None:
            return _text(404, "no contextualization files")
        path = (self.context_dir / name).resolve()
        if path.parent != self.context_dir or not path.is_file():
            return _text(404, "no such contextualization file")
        try:
            data = await self._in_thread(path.read_bytes)
        except OSError:
            return _text(404, "no such contextualization file")
        return Response(data, media_type="application/octet-stream")
