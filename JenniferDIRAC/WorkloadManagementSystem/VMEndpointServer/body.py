"""Reading a request body from ASGI with every bound the endpoint needs: a byte limit checked
against Content-Length before reading and against the bytes actually read, one TOTAL deadline for
the whole body (v0.1.0's 30 s applied to each read, so one byte every 1.5 s held a connection for
ever), and a body that ends before its Content-Length (client gone) refused, never stored."""

from __future__ import annotations

import asyncio


class BodyError(Exception):
    status = 400


class BodyTooLarge(BodyError):
    status = 413

    def __init__(self, limit: int):
        super().__init__(f"body over the limit of {limit} bytes")


class BodyTimeout(BodyError):
    status = 408

    def __init__(self, seconds: float):
        super().__init__(f"the body was not received within {seconds:g} s")


class BodyIncomplete(BodyError):
    status = 400


def declared_length(headers) -> int | None:
    """Content-Length as an int, None when absent (chunked); raises BodyError when malformed."""
    value = headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BodyError("malformed Content-Length")
    return int(value)


async def read_body(receive, headers, limit: int, deadline_seconds: float) -> bytes:
    """The whole body, at most `limit` bytes, within `deadline_seconds` in all."""
    expected = declared_length(headers)
    if expected is not None and expected > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(deadline_seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BodyIncomplete(f"the client went away after {received} bytes of the body")
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BodyTimeout(deadline_seconds) from None
    if expected is not None and received != expected:
        raise BodyIncomplete(f"received {received} bytes of a body of {expected}")
    return b"".join(chunks)
