"""uvicorn's h11 protocol that hands the verified client certificate to the app.

uvicorn does not put the TLS peer certificate into the ASGI scope; asyncio calls
``connection_made`` after the handshake, so the certificate is read there and added to every
request's scope as ``scope["extensions"]["tls"]["client_cert_der"]``.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class ClientCertH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        app = self.app

        async def with_certificate(scope, receive, send):
            scope.setdefault("extensions", {})["tls"] = {"client_cert_der": peer}
            await app(scope, receive, send)

        self.app = with_certificate
