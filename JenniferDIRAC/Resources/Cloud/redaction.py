"""Scrubbing secrets from text that goes into exceptions and logs.

Two layers:

- ``Redactor``: replaces the known secret values of one backend (cloud password, application
  credential secret, EC2 secret key, OIDC refresh token) in the error texts the backend raises.
  Every value a Redactor knows is also masked in every log record of the process.
- The log mask (``install_log_masking``): HTTP client libraries log what they send at DEBUG:
  keystoneauth the JSON request bodies (``"user_data": "..."``, ``"password": "..."``), urllib3 the
  request line with libcloud's EC2 query string (``UserData=<base64>``); the user data carries the
  VM's endpoint token. The mask rewrites those fields to ``***`` in every record, whichever logger
  made it (urllib3, requests, libcloud, keystoneauth, openstack, botocore, DIRAC's gLogger...):
  it is installed as the process's log-record factory, which runs before any handler sees the
  record, and as a filter on the handlers of DIRAC's gLogger (whose variable message travels in
  the record's ``varmessage`` attribute, set after the factory).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MAX_MESSAGE = 400
MASK = "***"
#: Secrets shorter than this are not masked in log records (too likely to hit ordinary text).
_MIN_LOG_SECRET = 8


class Redactor:
    """Replaces known secret values by ``***`` and bounds the length of error text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        install_log_masking()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)
                _LOG_SECRETS.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + "..."
        return text


# --- the log mask --------------------------------------------------------------------------------
#: JSON fields (keystoneauth / openstacksdk bodies, Nova's create response).
_JSON_FIELDS = re.compile(
    r'("(?:OS-EXT-SRV-ATTR:)?user_data"|"adminPass"|"password"|"secret"|"refresh_token"|"access_token"'
    r'|"client_secret")(\s*:\s*")(?:[^"\\]|\\.)*(")'
)
#: Query-string and form fields (libcloud's EC2 API calls, logged by urllib3 and libcloud).
_FORM_FIELDS = re.compile(
    r"(?i)((?:^|[?&\s'\"])(?:UserData|user_data|Password|client_secret|refresh_token|SecretAccessKey)=)[^&\s'\"]*"
)
_TRIGGERS = ("user_data", "UserData", "userdata", "adminPass", "password", "Password", "secret", "Secret", "token")


class _SecretValues:
    """The secret values every log record is scrubbed of (filled by every Redactor)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        if len(value) < _MIN_LOG_SECRET:
            return
        with self._lock:
            if value not in self._values:
                self._values = tuple(sorted((*self._values, value), key=len, reverse=True))

    def __iter__(self):
        return iter(self._values)


_LOG_SECRETS = _SecretValues()


def mask_text(text: str) -> str:
    """``text`` with secret fields and known secret values replaced by ``***``."""
    for secret in _LOG_SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    if any(trigger in text for trigger in _TRIGGERS):
        text = _JSON_FIELDS.sub(rf"\1\2{MASK}\3", text)
        text = _FORM_FIELDS.sub(rf"\1{MASK}", text)
    return text


def mask_record(record: logging.LogRecord) -> None:
    """Mask a record in place: its message and, for gLogger's records, its variable message."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is left to the logging module
        return
    masked = mask_text(message)
    if masked != message:
        record.msg = masked
        record.args = ()
    varmessage = record.__dict__.get("varmessage")
    if isinstance(varmessage, str) and varmessage:
        record.varmessage = mask_text(varmessage)


class SecretLogFilter(logging.Filter):
    """A filter that masks every record it sees (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


#: Kept for the loggers that installed it by name before v0.2.0.
UserDataLogFilter = SecretLogFilter

_FILTER = SecretLogFilter()
_install_lock = threading.Lock()
_factory_installed = False
#: Loggers whose own records are also filtered directly (in case another library replaces the
#: record factory after us).
HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "requests", "libcloud", "keystoneauth",
                "keystoneauth.session", "keystoneauth.session.request", "keystoneauth.session.body",
                "openstack", "botocore", "botocore.endpoint", "botocore.parsers")


def _install_record_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def masking_record_factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        mask_record(record)
        return record

    logging.setLogRecordFactory(masking_record_factory)
    _factory_installed = True


def _filter_dirac_handlers() -> None:
    """gLogger's backends are handlers of the ``dirac`` logger (which does not propagate)."""
    for handler in logging.getLogger("dirac").handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def install_log_masking() -> None:
    """Install the log mask (idempotent; cheap to call again, e.g. after gLogger got a backend)."""
    with _install_lock:
        _install_record_factory()
        for name in HTTP_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        _filter_dirac_handlers()


#: The name OpenStackBackend calls.
install_http_log_filters = install_log_masking
