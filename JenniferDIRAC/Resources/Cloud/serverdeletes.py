"""``DELETE /servers/{id}`` sent straight to requests' transport adapter with the session's token.

Through the SDK's compute proxy one DELETE costs ~3.2 ms of client CPU (LocalCloud, this
machine): keystoneauth checks the token's expiry and looks the endpoint up for each request,
requests merges the environment's proxies, CA bundle and cookies into each. Sent here it costs
~1.2 ms; a steady VMDirector cycle at 5,000 VMs deletes ~50, the first of a day hundreds.

Nothing about the connection is ours: the pool, TLS verification and client certificate are the
keystoneauth session's (its mounted adapter, the ``verify``/``cert`` it was made with, the
environment's proxies and CA bundle read once, as requests reads them for each request). The
token is the session's, taken again every ``TOKEN_REUSE_SECONDS`` (keystoneauth renews a token
two minutes before it expires, so a kept one is always still valid) and at once after a 401.

The answers: 202 or 204 (deleted) and 404 (already gone) are the delete done. A 401 (a revoked
or expired token) drops the token from the session, and it and any answer that is neither a
success nor an error (a redirect) go back to the caller, which sends the DELETE through the SDK:
keystoneauth authenticates, follows, and the answer is the SDK's (a DELETE is idempotent). An error answer raises openstacksdk's
HttpException and a failed connection keystoneauth's exception, as the SDK's path would, for
the backend's one translation of errors.
"""

from __future__ import annotations

import contextlib
import threading
import time
from urllib.parse import quote

import openstack.exceptions as sdk_exceptions
import requests
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session

from JenniferDIRAC import __version__

#: seconds a token taken from the session is used for DELETEs before it is taken again
TOKEN_REUSE_SECONDS = 30.0
_DONE = frozenset((202, 204, 404))
_USER_AGENT = f"JenniferDIRAC/{__version__} {requests.utils.default_user_agent()}"


class ServerDeletes:
    """DELETEs of servers at the compute `endpoint` (as the SDK's compute proxy has it)."""

    def __init__(self, session: ks_session.Session, endpoint: str) -> None:
        self._session = session
        self._servers = endpoint.rstrip("/") + "/servers/"
        transport = session.session  # the requests.Session keystoneauth sends through
        self._adapter = transport.get_adapter(self._servers)
        settings = transport.merge_environment_settings(self._servers, {}, None, session.verify, session.cert)
        self._send = {"timeout": session.timeout, "verify": settings["verify"], "cert": settings["cert"],
                      "proxies": settings["proxies"]}
        self._lock = threading.Lock()
        self._template: requests.PreparedRequest | None = None  # a DELETE with the current token
        self._taken = 0.0

    def delete(self, vm_id: str) -> bool:
        """DELETE the server: True when it is deleted or was gone, False when the SDK's path must
        send it (a 401, an answer that is neither success nor error, no token to send)."""
        template = self._request()
        if template is None:
            return False
        request = template.copy()
        request.url = self._servers + quote(vm_id, safe="")
        try:
            response = self._adapter.send(request, **self._send)
        except requests.exceptions.SSLError as exc:
            raise ks_exceptions.SSLError(f"SSL exception connecting to {request.url}: {exc}") from exc
        except requests.exceptions.Timeout as exc:
            raise ks_exceptions.ConnectTimeout(f"Request to {request.url} timed out") from exc
        except requests.exceptions.ConnectionError as exc:
            raise ks_exceptions.ConnectFailure(f"Unable to establish connection to {request.url}: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise ks_exceptions.UnknownConnectionError(f"Unexpected exception for {request.url}: {exc}", exc) from exc
        try:
            status = response.status_code
            if status in _DONE:
                return True
            if status == 401:  # refused: the SDK's path authenticates first, as keystoneauth would after a 401
                self.forget_token()
                self._session.invalidate()
                return False
            if status < 400:
                return False
            sdk_exceptions.raise_from_response(response)
            return False  # not reached: raise_from_response raises for every status >= 400
        finally:
            with contextlib.suppress(requests.exceptions.RequestException):
                _ = response.content  # read to the end: the connection goes back to the pool
            response.close()

    def forget_token(self) -> None:
        with self._lock:
            self._template = None

    def _request(self) -> requests.PreparedRequest | None:
        """A DELETE carrying the session's token, taken again when it is older than TOKEN_REUSE_SECONDS."""
        with self._lock:
            if self._template is not None and time.monotonic() - self._taken < TOKEN_REUSE_SECONDS:
                return self._template
        headers = self._session.get_auth_headers()  # keystoneauth: its own lock, renewal, errors
        if not headers:
            return None
        template = requests.Request("DELETE", self._servers, headers={**headers, "User-Agent": _USER_AGENT}).prepare()
        with self._lock:
            self._template, self._taken = template, time.monotonic()
        return template
