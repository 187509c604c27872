"""The pilot wrapper a VM fetches once at boot, kept sealed in VMDB between submitJob and the fetch.

The CE renders the wrapper (with the pilot proxy inside) at submitJob. User data carries only a
one-time bootstrap token (VMTokens, scope ``jdb1``); the wrapper waits in VMDB's VMBootstrap row,
encrypted (AES-256-GCM) under a key derived from that token, so a database dump or backup alone
holds no usable proxy. The endpoint, given the token by the VM, unseals it once and VMDB forgets it.

The fetch answers ``JDIRAC_ENDPOINT_TOKEN=<report token>`` on the first line, then the wrapper.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: What VMDB keeps per VM (MEDIUMBLOB holds 16 MiB; a DIRAC pilot wrapper is some 60 KB).
MAX_WRAPPER_BYTES = 1 << 20
_KEY_CONTEXT = b"jdirac-bootstrap-seal/v1|"
_NONCE_BYTES = 12
TOKEN_LINE_PREFIX = b"JDIRAC_ENDPOINT_TOKEN="


class SealError(Exception):
    """The sealed wrapper does not open with this token (or was altered)."""


def _key(bootstrap_token: str) -> bytes:
    return hashlib.sha256(_KEY_CONTEXT + bootstrap_token.encode("ascii")).digest()


def seal(bootstrap_token: str, vm_name: str, wrapper: bytes) -> bytes:
    if len(wrapper) > MAX_WRAPPER_BYTES:
        raise ValueError(f"the pilot wrapper has {len(wrapper)} bytes, more than {MAX_WRAPPER_BYTES}")
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(_key(bootstrap_token)).encrypt(nonce, wrapper, vm_name.encode("ascii"))


def unseal(bootstrap_token: str, vm_name: str, sealed: bytes) -> bytes:
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return AESGCM(_key(bootstrap_token)).decrypt(nonce, ciphertext, vm_name.encode("ascii"))
    except (InvalidTag, ValueError):
        raise SealError(f"the stored wrapper of {vm_name} does not open with this token") from None


def bootstrap_body(report_token: str, wrapper: bytes) -> bytes:
    """What GET /vm/v1/<vm>/bootstrap answers."""
    return TOKEN_LINE_PREFIX + report_token.encode("ascii") + b"\n" + wrapper
