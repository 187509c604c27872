"""OIDC refresh tokens exchanged for access tokens (``egi-checkin`` and ``v3oidcrefreshtoken``
in CloudAuth, see credentials.py), then used as keystoneauth's ``v3oidcaccesstoken``.

Refresh-token rotation (EGI Check-in rotates them; a rotated-away token is dead, and replaying
it may revoke the whole family): every process using one CloudAuth section shares ONE token
cache beside the file, ``<CloudAuth>.<section>.oidc`` (mode 0600), and refreshes only while
holding an exclusive lock on it (``fcntl.flock``). Under the lock a process reads the newest
refresh token (and a still valid access token) from the cache, exchanges only if it must, and
writes the rotated refresh token back before releasing it. So the SiteDirector, the VMDirector
and the commands never present a refresh token another of them has rotated away, and a restart
continues from the newest one. The cache remembers a digest of the CloudAuth file's own refresh
token: when the administrator writes a new one into the file, the file wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.credentials import OPTION_CLOUD_AUTH
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudUnreachable, ConfigurationError


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenCache:
    """The shared OIDC token cache file (see the module documentation). Locked while used."""

    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[TokenCache._Open]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                OPTION_CLOUD_AUTH, f"cannot open the OIDC token cache {self.path}: {exc.strerror}"
            ) from None
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            yield TokenCache._Open(fd)
        finally:
            os.close(fd)

    class _Open:
        def __init__(self, fd: int) -> None:
            self.fd = fd

        def read(self) -> dict:
            os.lseek(self.fd, 0, os.SEEK_SET)
            raw = b""
            while chunk := os.read(self.fd, 65536):
                raw += chunk
            try:
                data = json.loads(raw.decode()) if raw.strip() else {}
            except (ValueError, UnicodeDecodeError):
                return {}  # a torn or foreign file: start again from the CloudAuth file
            return data if isinstance(data, dict) else {}

        def write(self, data: dict) -> None:
            raw = json.dumps(data).encode()
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.write(self.fd, raw)
            os.fsync(self.fd)


class RefreshTokenExchange:
    """Exchanges an OIDC refresh token for access tokens (RFC 6749 section 6), caching each
    access token until `margin` seconds before it expires. Thread-safe; with `cache_path`, the
    newest refresh token and the access token are shared with the other processes through the
    locked TokenCache (see the module documentation)."""

    def __init__(
        self,
        token_endpoint: str,
        refresh_token: str,
        client_id: str,
        client_secret: str = "",
        scope: str = "openid",
        margin: float = 60.0,
        clock=time.monotonic,
        cache_path: str = "",
        wall_clock=time.time,
    ) -> None:
        self.token_endpoint = token_endpoint
        self._origin = _digest(refresh_token)  # what the CloudAuth file says
        self._cache = TokenCache(cache_path) if cache_path else None
        self._wall_clock = wall_clock
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token = ""
        self._rejected = ""
        self._valid_until = 0.0
        #: number of exchanges made (tests and diagnostics)
        self.exchanges = 0

    def secrets(self) -> list[str]:
        return [s for s in (self._refresh_token, self._client_secret, self._access_token) if s]

    def invalidate(self) -> None:
        """Keystone refused the access token: never use it again (nor adopt it from the cache)."""
        with self._lock:
            self._rejected = self._access_token
            self._access_token = ""
            self._valid_until = 0.0

    def access_token(self, session) -> str:
        """A valid access token, exchanging the refresh token through keystoneauth `session`
        when the cached one is missing or about to expire."""
        with self._lock:
            if self._access_token and self._clock() < self._valid_until:
                return self._access_token
            if self._cache is None:
                return self._exchange(session)
            with self._cache.locked() as cache:
                shared = cache.read()
                if shared.get("origin") == self._origin:
                    self._adopt(shared)
                    if self._access_token and self._clock() < self._valid_until:
                        return self._access_token
                token = self._exchange(session)
                cache.write({
                    "origin": self._origin,
                    "refresh_token": self._refresh_token,
                    "access_token": token,
                    "valid_until": self._wall_clock() + max(0.0, self._valid_until - self._clock()),
                })
                return token

    def _adopt(self, shared: Mapping) -> None:
        """Take the newest tokens another process (or an earlier run) left in the cache."""
        refresh = shared.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self._refresh_token = refresh
        access, until = shared.get("access_token"), shared.get("valid_until")
        if isinstance(access, str) and access and access != self._rejected and isinstance(until, (int, float)):
            left = float(until) - self._wall_clock()
            if left > 0:
                self._access_token = access
                self._valid_until = self._clock() + left

    def _exchange(self, session) -> str:
        """Exchange the refresh token now (the caller holds the locks)."""
        payload = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "scope": self._scope,
        }
        requests_auth = None
        if self._client_secret:
            requests_auth = (self._client_id, self._client_secret)
        else:
            payload["client_id"] = self._client_id
        try:
            response = session.post(
                self.token_endpoint,
                data=payload,
                requests_auth=requests_auth,
                authenticated=False,
                log=False,  # the body carries the refresh token
            )
        except ks_exceptions.HttpError as exc:
            if exc.http_status is not None and exc.http_status >= 500:
                raise CloudUnreachable(
                    f"OIDC token endpoint {self.token_endpoint} failed (HTTP {exc.http_status})"
                ) from None
            raise CloudAuthError(
                f"OIDC token endpoint {self.token_endpoint} refused the refresh token "
                f"(HTTP {exc.http_status}{_oauth_error(exc.response)})"
            ) from None
        except ks_exceptions.ConnectionError as exc:
            raise CloudUnreachable(
                f"OIDC token endpoint {self.token_endpoint} unreachable ({type(exc).__name__})"
            ) from None
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise CloudAuthError(
                f"OIDC token endpoint {self.token_endpoint} returned no access_token"
            ) from None
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else 300.0
        if isinstance(body.get("refresh_token"), str) and body["refresh_token"]:
            self._refresh_token = body["refresh_token"]  # providers may rotate it
        self._access_token = token
        self._valid_until = self._clock() + max(0.0, lifetime - self._margin)
        self.exchanges += 1
        return token


def _oauth_error(response) -> str:
    """The OAuth `error` code of a token endpoint response (never its description)."""
    try:
        error = response.json().get("error")
    except Exception:  # noqa: BLE001 - any undecodable body just has no code
        return ""
    return f", {error}" if isinstance(error, str) and error.isprintable() and len(error) < 64 else ""


class OidcRefreshToken(v3.OidcAccessToken):
    """keystoneauth's ``v3oidcaccesstoken`` fed by a RefreshTokenExchange: every (re-)
    authentication with Keystone uses a fresh enough access token."""

    def __init__(self, auth_url: str, identity_provider: str, protocol: str,
                 exchange: RefreshTokenExchange, **scope: str) -> None:
        super().__init__(
            auth_url=auth_url,
            identity_provider=identity_provider,
            protocol=protocol,
            access_token="",
            **scope,
        )
        self.exchange = exchange

    def get_unscoped_auth_ref(self, session):
        self.access_token = self.exchange.access_token(session)
        try:
            return super().get_unscoped_auth_ref(session)
        except ks_exceptions.Unauthorized:
            # Keystone refused an access token we thought valid (revoked, clock skew): retry once
            self.exchange.invalidate()
            self.access_token = self.exchange.access_token(session)
            return super().get_unscoped_auth_ref(session)
