"""Per-VM tokens for the VM endpoint.

The CE puts one token in each VM's user data. A token names exactly one VM and an expiry, and is
signed with HMAC-SHA256 under a server-side secret that never leaves the DIRAC servers, so a VM
holds nothing that works for another VM or after its lifetime (no certificate, no shared secret).

Token text: ``jdv1.<vm name>.<expiry, unix seconds>.<base64url HMAC>``.

Two scopes, signed under different contexts so that neither verifies as the other: ``jdv1``
tokens write one VM's reports (heartbeats, logs, shutdown message); ``jdb1`` bootstrap tokens
fetch one VM's pilot wrapper once (the endpoint marks them spent in VMDB). Only the bootstrap
token travels in user data; the report token is handed out by the bootstrap fetch.

The secret file holds one secret per line (at least 32 characters each; ``#`` comments and blank
lines ignored). The first secret signs new tokens; all of them verify, so an administrator rotates
by adding a new first line and removing the old one after the longest VM lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

TOKEN_PREFIX = "jdv1"
BOOTSTRAP_PREFIX = "jdb1"
#: A bootstrap token is only good for the boot itself: long enough for a slow image to start.
BOOTSTRAP_LIFETIME_SECONDS = 3600
MIN_SECRET_CHARS = 32
#: VM names a token can carry: no dots, so the token splits unambiguously. Always used with
#: fullmatch (``$`` would let a trailing newline through).
VM_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The expiry: ASCII digits only (str.isdigit() also accepts superscripts, which int() refuses).
_EXPIRY_PATTERN = re.compile(r"[0-9]{1,12}")
_SIGNATURE_CONTEXT = b"jdirac-vm-token/v1"
_CONTEXTS = {TOKEN_PREFIX: _SIGNATURE_CONTEXT, BOOTSTRAP_PREFIX: b"jdirac-vm-bootstrap/v1"}
_MAX_TOKEN_CHARS = 256
#: A VM's token outlives its maximum lifetime by this much, so a late shutdown message still counts.
TOKEN_GRACE_SECONDS = 3600


class TokenError(Exception):
    """A token is refused. The message never contains the token or the secret."""


class TokenInvalid(TokenError):
    """Malformed, forged or signed with an unknown secret."""


class TokenExpired(TokenError):
    """Correctly signed but past its expiry."""


class SecretFileError(Exception):
    """The secret file is missing, unreadable, too permissive or holds no usable secret."""


@dataclass(frozen=True)
class VMToken:
    vm_name: str
    expires: int  # unix seconds
    scope: str = TOKEN_PREFIX  # TOKEN_PREFIX (reports) or BOOTSTRAP_PREFIX


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenAuthority:
    """Issues and verifies per-VM tokens with HMAC-SHA256."""

    def __init__(self, secrets: Sequence[bytes], clock: Callable[[], float] = time.time):
        if not secrets:
            raise SecretFileError("no secret given")
        for secret in secrets:
            if len(secret) < MIN_SECRET_CHARS:
                raise SecretFileError(f"a secret is shorter than {MIN_SECRET_CHARS} characters")
        self._secrets = [bytes(s) for s in secrets]
        self._clock = clock

    @classmethod
    def from_secret_file(cls, path: str | os.PathLike, clock: Callable[[], float] = time.time) -> TokenAuthority:
        return cls(read_secret_file(path), clock=clock)

    def _sign(self, secret: bytes, vm_name: str, expires: int, scope: str = TOKEN_PREFIX) -> str:
        message = b"|".join((_CONTEXTS[scope], vm_name.encode("ascii"), str(expires).encode("ascii")))
        return _b64(hmac.new(secret, message, hashlib.sha256).digest())

    def issue(self, vm_name: str, lifetime_seconds: int, scope: str = TOKEN_PREFIX) -> str:
        """A token of `scope` for `vm_name`, valid for `lifetime_seconds` from now."""
        if not isinstance(vm_name, str) or not VM_NAME_PATTERN.fullmatch(vm_name):
            raise ValueError(f"VM name {vm_name!r} cannot carry a token (allowed: {VM_NAME_PATTERN.pattern})")
        if lifetime_seconds <= 0:
            raise ValueError("token lifetime must be positive")
        if scope not in _CONTEXTS:
            raise ValueError(f"unknown token scope {scope!r}")
        expires = int(self._clock()) + int(lifetime_seconds)
        return f"{scope}.{vm_name}.{expires}.{self._sign(self._secrets[0], vm_name, expires, scope)}"

    def issue_for_vm(self, vm_name: str, max_lifetime_seconds: int) -> str:
        """The token the CE puts in a VM's user data: valid for the VM's lifetime plus a grace."""
        return self.issue(vm_name, int(max_lifetime_seconds) + TOKEN_GRACE_SECONDS)

    def issue_bootstrap(self, vm_name: str, lifetime_seconds: int = BOOTSTRAP_LIFETIME_SECONDS) -> str:
        """The one-time token a VM's user data carries to fetch its pilot wrapper."""
        return self.issue(vm_name, lifetime_seconds, scope=BOOTSTRAP_PREFIX)

    def verify(self, token: str, scope: str = TOKEN_PREFIX) -> VMToken:
        """The VM a token of `scope` was issued for; raises TokenInvalid or TokenExpired."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise TokenInvalid("malformed token")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != scope or scope not in _CONTEXTS:
            raise TokenInvalid("malformed token")
        _, vm_name, expires_text, signature = parts
        if not VM_NAME_PATTERN.fullmatch(vm_name) or not _EXPIRY_PATTERN.fullmatch(expires_text):
            raise TokenInvalid("malformed token")
        expires = int(expires_text)
        presented = signature.encode("ascii", "replace")
        # Check every secret without stopping early, so timing says nothing about which matched.
        matched = False
        for secret in self._secrets:
            expected = self._sign(secret, vm_name, expires, scope).encode("ascii")
            matched |= hmac.compare_digest(expected, presented)
        if not matched:
            raise TokenInvalid("token signature does not verify")
        if expires <= self._clock():
            raise TokenExpired(f"token for {vm_name} expired")
        return VMToken(vm_name=vm_name, expires=expires, scope=scope)


def read_secret_file(path: str | os.PathLike) -> list[bytes]:
    """Secrets from `path`; refuses a file that anyone but its owner can read or write (a group
    member who can write it could add a signing secret of their own)."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise SecretFileError(f"cannot read token secret file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"token secret file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise SecretFileError(
            f"token secret file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or other users can access it;"
            " it must be 0600 (chmod 600 it)"
        )
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise SecretFileError(f"cannot read token secret file {path}: {exc.strerror}") from None
    secrets = [line.strip() for line in lines if line.strip() and not line.strip().startswith(b"#")]
    if not secrets:
        raise SecretFileError(f"token secret file {path} holds no secret")
    short = [i for i, s in enumerate(secrets, 1) if len(s) < MIN_SECRET_CHARS]
    if short:
        raise SecretFileError(
            f"token secret file {path}: secret number {short[0]} is shorter than {MIN_SECRET_CHARS} characters"
        )
    return secrets


def create_secret_file(path: str | os.PathLike) -> None:
    """Write a new random secret to `path` (mode 600); refuses to overwrite an existing file."""
    import secrets as random_source

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(random_source.token_urlsafe(48) + "\n")
