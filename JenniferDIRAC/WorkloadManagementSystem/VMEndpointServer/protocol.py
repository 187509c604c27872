"""uvicorn's h11 protocol with a header deadline.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) but a fresh connection that
sends nothing, or sends its request line one byte at a time, is kept for ever (any byte re-arms
nothing and cancels the keep-alive timer). Here every connection must deliver a complete request
head within ``header_timeout`` seconds of being opened (after the TLS handshake, which asyncio
bounds itself) or of its previous response; otherwise it is closed. The same deadline closes a
connection still sending the body of a request that was answered early (e.g. 401).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineH11Protocol(H11Protocol):
    header_timeout: float = 10.0  # set by bounded_protocol()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served; the app bounds its body itself
        self.transport.close()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a complete request head arrived
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        # Armed first: a pipelined request handled inside super() disarms it again.
        self._arm_header_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)


def bounded_protocol(header_timeout: float) -> type[HeaderDeadlineH11Protocol]:
    """The protocol class for uvicorn's ``Config(http=...)`` with this header deadline."""
    return type("VMEndpointH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout": float(header_timeout)})
