"""Errors raised by cloud access. Messages never contain secrets."""


class CloudError(Exception):
    """Any failure talking to a cloud."""


class CloudUnreachable(CloudError):
    """The cloud could not be reached or answered with a server error: retry later."""


class CloudAuthError(CloudError):
    """Authentication was refused (bad or expired credentials)."""


class QuotaExceeded(CloudError):
    """The project has no room for the request. A pause, not a failure of the CE."""


class NotFound(CloudError):
    """An image, flavor, network or VM does not exist."""


class ConfigurationError(CloudError):
    """A CE option is missing or wrong. The message names the CS option."""

    def __init__(self, option: str, problem: str):
        self.option = option
        super().__init__(f"CS option {option}: {problem}")
