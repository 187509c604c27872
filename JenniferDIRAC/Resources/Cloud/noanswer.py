"""Whether a failed request may have been carried out: sent, then no answer came back.

A create that was refused (an HTTP error answer) or never left this host (connection refused,
connect timeout, unknown host) created nothing. A create that was sent and then timed out, had
its connection closed before the answer, or got a gateway's 504 may have created the VM, now or
a little later: its outcome is unknown until a listing shows the VM or its grace runs out.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import requests
import urllib3.exceptions as urllib3_errors

#: the request never reached the cloud (NewConnectionError is a ConnectTimeoutError)
_NEVER_SENT = (
    urllib3_errors.ConnectTimeoutError,
    urllib3_errors.NameResolutionError,
    requests.exceptions.ConnectTimeout,
    ConnectionRefusedError,
    socket.gaierror,
)
#: the request was sent and its answer never came
_UNANSWERED = (
    urllib3_errors.ReadTimeoutError,
    urllib3_errors.ProtocolError,
    requests.exceptions.ReadTimeout,
    requests.exceptions.ChunkedEncodingError,
    http.client.RemoteDisconnected,
    ConnectionResetError,
    TimeoutError,
)

#: a gateway's "the cloud behind me did not answer in time"
GATEWAY_TIMEOUT = 504


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps (causes, contexts, urllib3's ``reason``, args)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]


def sent_without_answer(exc: BaseException) -> bool:
    """True when `exc` says the request was sent and no answer came back (its outcome is unknown)."""
    causes = list(_causes(exc))
    if any(isinstance(cause, _NEVER_SENT) for cause in causes):
        return False
    return any(isinstance(cause, _UNANSWERED) for cause in causes)
