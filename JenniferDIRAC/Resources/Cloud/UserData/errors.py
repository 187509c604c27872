"""Errors of user-data rendering. Messages name the CS option or field, never a secret."""

from __future__ import annotations

from ..errors import CloudError, ConfigurationError

__all__ = ["ConfigurationError", "UserDataError", "UserDataTooLarge", "CloudConfigInvalid"]


class UserDataError(CloudError):
    """User data could not be produced."""


class UserDataTooLarge(UserDataError):
    def __init__(self, size: int, limit: int, compressed: bool):
        self.size = size
        self.limit = limit
        how = "after gzip" if compressed else "uncompressed (gzip not allowed)"
        super().__init__(f"user data is {size} bytes {how}, over the cloud's limit of {limit} bytes")


class CloudConfigInvalid(UserDataError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid cloud-config: " + "; ".join(problems))
