"""The DIRAC boundary of the cloud CE: every CE API method returns S_OK/S_ERROR and no exception
escapes into the SiteDirector's thread pool."""

from __future__ import annotations

import functools

from DIRAC import S_ERROR

from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError


def dirac_boundary(what: str):
    """Decorate CE method `what`: not configured, a CloudError or any exception -> S_ERROR
    (refused credentials also drop the backend: they are read again next time)."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            if self.cloudConfig is None:
                return S_ERROR(f"{what}: {self.ceName} is not configured: {self._configError}")
            try:
                return method(self, *args, **kwargs)
            except CloudError as exc:
                if isinstance(exc, CloudAuthError):
                    self._dropBackend()  # credentials are read again next time
                self.log.error(f"{what} failed", f"{self.ceName}: {exc}")
                return S_ERROR(f"{what} failed for {self.ceName}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the SiteDirector's thread pool must never see it
                self.log.exception(f"{what}: unexpected error", self.ceName, lException=exc)
                return S_ERROR(f"{what} failed for {self.ceName}: unexpected {type(exc).__name__}")

        return wrapper

    return decorate
