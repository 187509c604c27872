"""Errors the LocalCloud state raises; the HTTP layer renders them in each service's shape."""

from __future__ import annotations


class LocalCloudError(Exception):
    """An API error with its HTTP status; ``message`` is what the client sees."""

    code = 500

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(LocalCloudError):
    code = 400


class Unauthorized(LocalCloudError):
    code = 401


class Forbidden(LocalCloudError):
    code = 403


class NotFound(LocalCloudError):
    code = 404


class Conflict(LocalCloudError):
    code = 409
