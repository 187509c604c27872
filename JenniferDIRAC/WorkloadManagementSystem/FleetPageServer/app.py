"""The fleet page's routes (GET and HEAD only; everything else 405):

    /                 sites x states, CEs (VMs, recent failures, active backoffs), quota bars,
                      the accounting plots
    /ce/<CE>          one CE: backoffs, recent failures (kind, the cloud's text), its VMs
    /vm/<VM name>     one VM: its record, heartbeats, uploaded logs
    /plot/<name>.png  an accounting plot (PNG from the accounting plot code)

Every request first passes access.operator_for (403 otherwise); database reads run in worker
threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from starlette.responses import HTMLResponse, Response

from .access import Refused, operator_for
from .fleet import STATES, FleetUnavailable, read_fleet, read_vm
from .render import VM_KEYS, page

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    png: Callable[[], bytes]  # makes the PNG (may raise)


def _html(status: int, body: str) -> Response:
    return HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)


def _message(status: int, title: str, message: str) -> Response:
    return _html(status, page("message", title=title, message=message))


class FleetPageApp:
    def __init__(self, client, metrics_url: str = "", plots: tuple[Plot, ...] = (), log=lambda text: None):
        self.client, self.metrics_url, self.plots, self.log = client, metrics_url, plots, log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        response = await self._respond(scope)
        await response(scope, receive, send)

    async def _respond(self, scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return Response("read-only\n", status_code=405, headers={"Allow": "GET, HEAD"})
        certificate = scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
        try:
            operator = await anyio.to_thread.run_sync(operator_for, certificate)
        except Refused as exc:
            return _message(403, "Access refused", str(exc))
        try:
            return await anyio.to_thread.run_sync(self._page, scope["path"], operator)
        except FleetUnavailable as exc:
            self.log(f"fleet page: VMDB unavailable: {exc}")
            return _message(503, "VMDB unavailable", "the VM database cannot be read now")

    def _page(self, path: str, operator) -> Response:
        if path == "/":
            fleet = read_fleet(self.client, self.metrics_url)
            return _html(
                200,
                page("fleet", title="Fleet", operator=operator, fleet=fleet, states=STATES, plots=self.plots),
            )
        if path.startswith("/ce/"):
            ce = path[len("/ce/") :]
            detail = read_fleet(self.client).ces.get(ce)
            if detail is None:
                return _message(404, "Not found", "no such CE in VMDB")
            vms = self.client.getVMs(ce=ce, active_only=True)
            return _html(
                200, page("ce", title=ce, operator=operator, d=detail, vms=vms["Value"] if vms["OK"] else [])
            )
        if path.startswith("/vm/"):
            history = read_vm(self.client, path[len("/vm/") :])
            if history is None:
                return _message(404, "Not found", "no such VM in VMDB")
            return _html(
                200, page("vm", title=history.record["vm_name"], operator=operator, vm=history, keys=VM_KEYS)
            )
        if path.startswith("/plot/") and path.endswith(".png"):
            plot = next((p for p in self.plots if p.name == path[len("/plot/") : -4]), None)
            if plot is None:
                return _message(404, "Not found", "no such plot")
            try:
                data = plot.png()
            except Exception as exc:  # noqa: BLE001 - a failed plot is a 502, not a broken page
                self.log(f"fleet page: plot {plot.name} failed: {exc}")
                return _message(
                    502, "Plot unavailable", f"the accounting plot {plot.name} cannot be made now"
                )
            return Response(data, media_type="image/png", headers=_SECURITY_HEADERS)
        return _message(404, "Not found", "no such page")
