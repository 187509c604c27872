"""Scrubbing secrets from text that goes into exceptions and logs."""

from __future__ import annotations

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
