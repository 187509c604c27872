"""Errors raised by cloud access. Messages never contain secrets.

Every error carries a :class:`FailureKind`: what the failure means for the lifecycle policy,
decided by the backend that read the cloud's answer (never by parsing message text later).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import Enum


class FailureKind(str, Enum):
    """What a failed cloud request means for the CE and the VMDirector.

    The value is what VMDB stores (column ``FailureKind``).
    """

    #: The project has no room (instances, cores, RAM, ports, ...): a pause, not a CE failure.
    QUOTA = "quota"
    #: The cloud has no capacity for this flavor/zone now ("No valid host",
    #: InsufficientInstanceCapacity): try another flavor or zone later; not a CE failure.
    CAPACITY = "capacity"
    #: The request can never succeed as configured (bad image, flavor, network, too many
    #: metadata items, user data too large, ...): counts towards backoff.
    CONFIGURATION = "configuration"
    #: The cloud accepted the request and failed it (ERROR VM, 500 on create, ...).
    CLOUD_FAULT = "cloud_fault"
    #: The cloud could not be reached or did not answer in time.
    UNREACHABLE = "unreachable"
    #: Authentication was refused.
    AUTH = "auth"

    @property
    def counts_towards_backoff(self) -> bool:
        """Quota and capacity are the cloud being full, not the CE being broken."""
        return self not in (FailureKind.QUOTA, FailureKind.CAPACITY)


class CloudError(Exception):
    """Any failure talking to a cloud."""

    kind: FailureKind = FailureKind.CLOUD_FAULT


class CloudUnreachable(CloudError):
    """The cloud could not be reached or answered with a server error: retry later."""

    kind = FailureKind.UNREACHABLE


class CloudNoAnswer(CloudUnreachable):
    """The request was sent and no answer came back (a read timeout, a connection closed before
    the answer, a gateway's 504): the cloud may have done it (noanswer.sent_without_answer)."""


class CloudAuthError(CloudError):
    """Authentication was refused (bad or expired credentials)."""

    kind = FailureKind.AUTH


class QuotaExceeded(CloudError):
    """The project has no room for the request. A pause, not a failure of the CE."""

    kind = FailureKind.QUOTA


class CapacityExhausted(CloudError):
    """The cloud has no host for this flavor/zone now. Not a failure of the CE."""

    kind = FailureKind.CAPACITY


class NotFound(CloudError):
    """An image, flavor, network or VM does not exist."""

    kind = FailureKind.CONFIGURATION


class RequestRejected(CloudError):
    """The cloud refused the request as invalid (a 400-class answer that retrying cannot fix)."""

    kind = FailureKind.CONFIGURATION


class ConfigurationError(CloudError):
    """A CE option is missing or wrong. The message names the CS option."""

    kind = FailureKind.CONFIGURATION

    def __init__(self, option: str, problem: str):
        self.option = option
        super().__init__(f"CS option {option}: {problem}")


@contextlib.contextmanager
def translated_errors(
    what: str,
    translate: Callable[[Exception, str], CloudError],
    library_errors: tuple[type[Exception], ...] = (Exception,),
) -> Iterator[None]:
    """One call to a cloud library (`what` it does): its `library_errors` leave as the CloudError
    `translate(exc, what)` returns, a CloudError as it is (every backend's calls go through this)."""
    try:
        yield
    except CloudError:
        raise
    except library_errors as exc:
        raise translate(exc, what) from None
