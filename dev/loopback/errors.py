"""The one error of the loopback server."""


class LoopbackError(RuntimeError):
    """The loopback server could not be started or used; the message names the log to read."""
