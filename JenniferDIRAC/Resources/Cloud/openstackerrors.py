"""OpenStack's answers (openstacksdk and keystoneauth exceptions) as typed CloudErrors.

Every message is scrubbed of the credential's secrets. The failure kind is read from Nova's /
Neutron's real answers (``classify``), never decided later from text:

- 403 ``Quota exceeded for instances|cores|ram``, 403 ``Maximum number of ports exceeded``
  (Neutron's port quota through Nova), 409 ``OverQuota`` / ``Quota exceeded for resources``
  (Neutron), 413 -> QuotaExceeded (quota);
- 403 ``Maximum number of metadata items exceeds 128`` and any other 403 (policy), every 400
  -> RequestRejected (configuration: retrying cannot help); 400 ``Can not find requested
  image`` / ``Invalid flavorRef provided.`` / ``Network ... could not be found`` ->
  StaleReference (the cached id is gone: re-resolve);
- 401 after re-authentication, and Keystone's 404 ``Could not find token`` (a revoked or
  expired token) -> CloudAuthError (the token is dropped: the next call authenticates again);
  any other 404 from the identity URL -> ConfigurationError naming the URL option;
- 404 -> NotFound; 5xx, 429, connection failures and timeouts -> CloudUnreachable (after a
  create the VM may exist: the caller looks it up by name before any retry), CloudNoAnswer
  when the request was sent and no answer came (a timeout, a connection closed before the
  answer, 504: a create's outcome is unknown); a 409 conflict -> CloudError (cloud fault).

A server in ERROR carries its fault's kind (``VM.fault_kind``): 413 -> quota, ``No valid host
was found`` -> capacity, anything else -> cloud fault.
"""

from __future__ import annotations

import re

import openstack.exceptions as sdk_exceptions
from keystoneauth1 import exceptions as ks_exceptions

from JenniferDIRAC.Resources.Cloud.errors import (
    CloudAuthError,
    CloudError,
    CloudNoAnswer,
    CloudUnreachable,
    ConfigurationError,
    FailureKind,
    NotFound,
    QuotaExceeded,
    RequestRejected,
)
from JenniferDIRAC.Resources.Cloud.noanswer import GATEWAY_TIMEOUT, sent_without_answer
from JenniferDIRAC.Resources.Cloud.redaction import Redactor
from JenniferDIRAC.Resources.Cloud.resolving import StaleReference

#: what openstacksdk and keystoneauth raise; translate_error makes them CloudErrors
SDK_ERRORS = (sdk_exceptions.SDKException, ks_exceptions.ClientException)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, sdk_exceptions.HttpException):
        detail = exc.details or exc.message or ""
        return f"HTTP {exc.status_code}: {detail}".strip()
    message = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"


#: Nova's 400 answers to a create whose image, flavor or network id no longer exists
#: (real Nova's wording first, then LocalCloud's)
_STALE_REFERENCES = (
    ("image", re.compile(r"can not find requested image|image \S+ could not be found|image \S+ is not active", re.I)),
    ("flavor", re.compile(r"invalid flavorref provided|flavor \S+ could not be found", re.I)),
    ("network", re.compile(r"network \S+ could not be found", re.I)),
)
_QUOTA_403 = re.compile(r"quota exceeded for (?!metadata)|maximum number of ports exceeded", re.I)
_QUOTA_409 = re.compile(r"overquota|quota exceeded", re.I)
_NO_VALID_HOST = re.compile(r"no valid host", re.I)
_TOKEN_NOT_FOUND = re.compile(r"could not find token|failed to validate token", re.I)


def classify(status: int, message: str, fault: bool = False) -> FailureKind:
    """What Nova's (or Neutron's through Nova) answer `status` + `message` means; with
    ``fault=True``, the fault of a server in ERROR (its ``code`` and ``message``)."""
    if status == 413:
        return FailureKind.QUOTA
    if fault:
        if _NO_VALID_HOST.search(message):
            return FailureKind.CAPACITY
        if _QUOTA_403.search(message):
            return FailureKind.QUOTA
        return FailureKind.CLOUD_FAULT
    if status == 403:
        # "Maximum number of metadata items exceeds 128" is a 403 QuotaError in Nova, but no
        # freed VM ever makes room for it: it is the configuration
        return FailureKind.QUOTA if _QUOTA_403.search(message) else FailureKind.CONFIGURATION
    if status == 409 and _QUOTA_409.search(message):
        return FailureKind.QUOTA
    if status == 401:
        return FailureKind.AUTH
    if status >= 500 or status in (0, 408, 429):
        return FailureKind.UNREACHABLE
    if 400 <= status < 500 and status != 409:  # 409: a conflict with the server's state
        return FailureKind.CONFIGURATION
    return FailureKind.CLOUD_FAULT


def stale_reference(message: str) -> str | None:
    """"image", "flavor" or "network" when a 400 says that id no longer exists."""
    for what, pattern in _STALE_REFERENCES:
        if pattern.search(message):
            return what
    return None


def _http_error(status: int, message: str, text: str) -> CloudError:
    kind = classify(status, message)
    if kind is FailureKind.QUOTA:
        return QuotaExceeded(text)
    if kind is FailureKind.AUTH:
        return CloudAuthError(text)
    if status == 404:
        return NotFound(text)
    if status == 400:
        what = stale_reference(message)
        return StaleReference(what, text) if what else RequestRejected(text)
    if kind is FailureKind.CONFIGURATION:
        return RequestRejected(text)
    if kind is FailureKind.UNREACHABLE:
        # after a create, the VM may exist: the caller looks it up by name before any retry
        return CloudNoAnswer(text) if status == GATEWAY_TIMEOUT else CloudUnreachable(text)
    return CloudError(text)


def translate_error(
    exc: BaseException, what: str, redact: Redactor, auth_url_option: str = "AuthURL"
) -> CloudError:
    """The CloudError for an openstacksdk / keystoneauth exception raised while doing `what`.
    `auth_url_option` is the CS option the Keystone URL came from (named when it is wrong)."""
    text = redact(f"{what}: {_describe(exc)}")
    if isinstance(exc, sdk_exceptions.HttpException):
        status = exc.status_code or 0
        return _http_error(status, str(exc.details or exc.message or ""), text)
    if isinstance(exc, ks_exceptions.Unauthorized | ks_exceptions.AuthorizationFailure):
        return CloudAuthError(text)
    if isinstance(exc, ks_exceptions.HttpError):
        status = exc.http_status or 0
        url = str(getattr(exc, "url", "") or "")
        message = str(getattr(exc, "message", "") or "") + " " + _body_text(getattr(exc, "response", None))
        if status == 404 and "/auth/tokens" in url:
            if _TOKEN_NOT_FOUND.search(message):
                return CloudAuthError(f"{text} (the token was revoked or has expired)")
            return ConfigurationError(
                auth_url_option,
                redact(f"the identity service answered 404 at {url.split('?')[0]}: "
                       "the Keystone URL's path is wrong (it ends with /v3 on a standard Keystone)"),
            )
        if status in (401, 403):
            return CloudAuthError(text)
        return _http_error(status, message, text)
    if isinstance(exc, ks_exceptions.ConnectionError | ks_exceptions.DiscoveryFailure):
        return CloudNoAnswer(text) if sent_without_answer(exc) else CloudUnreachable(text)
    if isinstance(exc, ks_exceptions.EndpointNotFound):
        return CloudError(text + " (is the region / interface right?)")
    return CloudError(text)


def _body_text(response) -> str:
    try:
        return str(response.text or "")[:1000] if response is not None else ""
    except Exception:  # noqa: BLE001 - an unreadable body adds nothing
        return ""
