"""DIRAC's libcloud OpenStack options (``Driver_ex_*``) translated to keystoneauth / openstacksdk
settings: an existing DIRAC CloudCE configuration works unchanged with ``CloudType = OPENSTACK``.
The options written directly (AuthURL, ProjectName, ...) win; errors name the CS option."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

DRIVER_PREFIX = "Driver_"

#: libcloud's ``ex_force_auth_version`` -> keystoneauth auth type it implies.
_AUTH_VERSIONS = {
    "3.x_password": "password",
    "3.x_appcred": "v3applicationcredential",
    "3.x_oidc_access_token": "v3oidcaccesstoken",
    "2.0_password": "password",
    "2.0": "password",
}
#: Driver_ options of DIRAC's OpenStack configurations that the translation consumes.
_TRANSLATED_DRIVER_OPTIONS = {
    "ex_force_auth_url",
    "ex_force_auth_version",
    "ex_tenant_name",
    "ex_tenant_id",
    "ex_domain_name",
    "ex_tenant_domain_id",
    "ex_force_service_region",
    "ex_force_base_url",
    "ex_force_microversion",
    "ex_force_service_type",
    "ex_force_service_name",
}
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class OpenStackIdentity:
    """Non-secret keystoneauth / openstacksdk settings of an OpenStack CE."""

    auth_url: str = ""
    #: auth type implied by Driver_ex_force_auth_version ("" = let the CloudAuth file decide)
    auth_type: str = ""
    project_name: str = ""
    project_id: str = ""
    project_domain_name: str = ""
    project_domain_id: str = ""
    user_domain_name: str = ""
    protocol: str = ""  # OIDC federation protocol (DIRAC: Driver_ex_tenant_name with 3.x_oidc_access_token)
    region_name: str = ""
    interface: str = ""
    compute_endpoint_override: str = ""
    compute_api_version: str = ""

    def identity(self) -> dict[str, str]:
        """The keystoneauth identity keys that are set (what credentials.openstack_auth_plugin
        takes as `identity`)."""
        keys = (
            "auth_url",
            "project_name",
            "project_id",
            "project_domain_name",
            "project_domain_id",
            "user_domain_name",
            "protocol",
        )
        return {key: getattr(self, key) for key in keys if getattr(self, key)}


def openstack_identity(
    driver: Mapping[str, str], text: Callable[[str], str]
) -> tuple[OpenStackIdentity, tuple[str, ...]]:
    """Translate DIRAC's libcloud OpenStack options (`driver`: the Driver_ options without the
    prefix); the options written directly (`text(option)`: their value, "" if unset) win. Returns
    the identity and the Driver_ options openstacksdk cannot honour."""
    auth_version = driver.get("ex_force_auth_version", "")
    auth_type = ""
    if auth_version:
        auth_type = _AUTH_VERSIONS.get(auth_version, "")
        if not auth_type:
            raise ConfigurationError(
                "Driver_ex_force_auth_version",
                f"{auth_version!r} is not supported (use one of {', '.join(_AUTH_VERSIONS)})",
            )
    auth_url = driver.get("ex_force_auth_url", "")
    if auth_url:
        auth_url = _keystone_url(auth_url, auth_version)
    project_name = driver.get("ex_tenant_name", "")
    project_id = driver.get("ex_tenant_id", "")
    user_domain = driver.get("ex_domain_name", "")
    protocol = ""
    if auth_type == "v3oidcaccesstoken":
        # libcloud's OIDC connection reuses its options: ex_tenant_name is the federation
        # protocol and ex_domain_name selects the project (by name or id).
        protocol, project_name, user_domain = project_name, "", ""
        target = driver.get("ex_domain_name", "")
        if _HEX_ID.match(target):
            project_id = project_id or target
        else:
            project_name = target
    ignored = tuple(
        sorted(
            DRIVER_PREFIX + key
            for key in driver
            if key not in _TRANSLATED_DRIVER_OPTIONS or key in ("ex_force_service_type", "ex_force_service_name")
        )
    )
    identity = OpenStackIdentity(
        auth_url=text("AuthURL") or auth_url,
        auth_type=auth_type,
        project_name=text("ProjectName") or project_name,
        project_id=text("ProjectID") or project_id,
        project_domain_name=text("ProjectDomainName"),
        project_domain_id=text("ProjectDomainID") or driver.get("ex_tenant_domain_id", ""),
        user_domain_name=text("UserDomainName") or user_domain,
        protocol=text("Protocol") or protocol,
        region_name=text("Region") or driver.get("ex_force_service_region", ""),
        interface=text("Interface"),
        compute_endpoint_override=driver.get("ex_force_base_url", ""),
        compute_api_version=driver.get("ex_force_microversion", ""),
    )
    if identity.auth_url:
        parts = urlsplit(identity.auth_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            option = "AuthURL" if text("AuthURL") else "Driver_ex_force_auth_url"
            raise ConfigurationError(option, f"{identity.auth_url!r} is not an http(s) URL")
    return identity, ignored


def _keystone_url(url: str, auth_version: str) -> str:
    """libcloud takes Keystone's root URL and appends /v3/auth/tokens itself; keystoneauth wants
    the versioned identity endpoint. Keystone v2 is gone from OpenStack (Queens): a v2 setting
    is served by the same Keystone's v3."""
    parts = urlsplit(url.strip())
    path = re.sub(r"/v2\.0$", "", parts.path.rstrip("/"))
    if not path.endswith("/v3"):
        path += "/v3"
    return urlunsplit(parts._replace(path=path))
