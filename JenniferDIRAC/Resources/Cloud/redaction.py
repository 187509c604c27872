"""Scrubbing secrets from text that goes into exceptions and logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MAX_MESSAGE = 400


class Redactor:
    """Replaces known secret values by ``***`` and bounds the length of error text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + "..."
        return text


# keystoneauth logs request bodies at DEBUG (``REQ: curl ... -d '{"server": {... "user_data":
# "..."}}'``); user data carries the VM's endpoint token, so it is masked in those records.
_USER_DATA = re.compile(r'("(?:OS-EXT-SRV-ATTR:)?user_data"\s*:\s*")[^"]*(")')
_HTTP_LOGGERS = ("keystoneauth.session", "keystoneauth.session.request", "keystoneauth.session.body",
                 "openstack")


class UserDataLogFilter(logging.Filter):
    """Masks user data in the HTTP debug records of keystoneauth / openstacksdk."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left to the logging module
            return True
        if "user_data" in message:
            record.msg = _USER_DATA.sub(r"\1***\2", message)
            record.args = ()
        return True


_FILTER = UserDataLogFilter()


def install_http_log_filters() -> None:
    """Attach the user-data mask to the HTTP client loggers (idempotent)."""
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
