"""Fit user data into a cloud's size limit: plain text if it fits, gzip (which cloud-init
recognises by its magic bytes) if it does not and the cloud allows binary user data."""

from __future__ import annotations

import gzip

from .errors import UserDataTooLarge


def pack_user_data(text: str, limit_bytes: int, allow_gzip: bool = True) -> bytes:
    """`text` as the bytes to send; raises UserDataTooLarge naming the limit and the size."""
    raw = text.encode("utf-8")
    if len(raw) <= limit_bytes:
        return raw
    if not allow_gzip:
        raise UserDataTooLarge(len(raw), limit_bytes, compressed=False)
    # mtime=0 keeps the output identical for identical input.
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    if len(packed) > limit_bytes:
        raise UserDataTooLarge(len(packed), limit_bytes, compressed=True)
    return packed
