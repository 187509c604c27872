"""Where the CE finds the VM endpoint: ``/Resources/Cloud/Endpoint`` in the CS.

    Resources/Cloud/Endpoint
    {
      URL = https://dirac.example.org:8449       # root URL the VMs call
      TokenSecretFile = /opt/dirac/etc/vm-endpoint.secret
    }

A CE (or queue) may override both with ``Context_EndpointURL`` and ``Context_TokenSecretFile``.
No URL means the VMs report nowhere (their logs are then only on the cloud's console).
"""

from __future__ import annotations

from dataclasses import dataclass

CS_ENDPOINT_PATH = "/Resources/Cloud/Endpoint"


@dataclass(frozen=True)
class EndpointSettings:
    url: str = ""
    token_secret_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.url)


def endpoint_settings(ce_parameters: dict | None = None, cs_values: dict | None = None) -> EndpointSettings:
    """The endpoint a CE's VMs use: its Context_EndpointURL / Context_TokenSecretFile, else the
    values under /Resources/Cloud/Endpoint (`cs_values`; read from gConfig when None)."""
    if cs_values is None:
        from DIRAC import gConfig

        result = gConfig.getOptionsDict(CS_ENDPOINT_PATH)
        cs_values = result["Value"] if result["OK"] else {}
    params = ce_parameters or {}
    url = str(params.get("Context_EndpointURL") or cs_values.get("URL") or "").strip()
    secret = str(params.get("Context_TokenSecretFile") or cs_values.get("TokenSecretFile") or "").strip()
    return EndpointSettings(url=url.rstrip("/"), token_secret_file=secret)
