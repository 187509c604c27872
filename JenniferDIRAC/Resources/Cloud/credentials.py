"""Credentials of a cloud CE: DIRAC's CloudAuth ini file, or a clouds.yaml cloud.

CloudAuth file (the CE's ``CloudAuth`` option; DIRAC's format, kept compatible)::

    [DEFAULT]
    key = myusername
    secret = mypassword

    [cloud.mysite.example]          ; a section named after the CE overrides DEFAULT
    auth_type = v3applicationcredential
    application_credential_id = 0123abcd
    application_credential_secret = ...

``key`` / ``secret`` keep DIRAC's meaning (libcloud's key and secret). For OpenStack they fill
the credential of the ``auth_type`` (default ``password``):

==========================  ==================================  ===============================
auth_type                   ``key`` means                       ``secret`` means
==========================  ==================================  ===============================
password                    username                            password
v3applicationcredential     application_credential_id           application_credential_secret
token                       (unused)                            token
v3oidcaccesstoken           identity_provider                   access_token
egi-checkin                 identity_provider (egi.eu)          refresh_token
v3oidcrefreshtoken          identity_provider                   refresh_token
==========================  ==================================  ===============================

Explicit keys may be given instead (``username``, ``password``, ``application_credential_id``,
``application_credential_secret``, ``token``, ``access_token``, ``refresh_token``,
``client_id``, ``client_secret``, ``token_endpoint``, ``scope``, ``identity_provider``,
``protocol``), and any identity key (``auth_url``, ``project_name``, ``project_id``,
``user_domain_name``, ``project_domain_name``, ...) which then overrides the CE's options.

``egi-checkin`` is an OIDC refresh token exchanged for an access token at EGI Check-in's token
endpoint (``identity_provider`` egi.eu, ``protocol`` openid by default), then keystoneauth's
``v3oidcaccesstoken``; ``v3oidcrefreshtoken`` is the same flow for any provider (set
``token_endpoint``). The access token is cached until shortly before it expires.

Refresh-token rotation, and the token cache every process using a section shares:
oidcrefresh.py.

The CloudAuth file is read again when it changes (``file_state``: device, inode, size, mtime;
see backends.credentials_changed) and after an authentication failure.

Values are read without interpolation (a ``%`` is literal) and one pair of surrounding quotes is
removed (DIRAC's documentation shows quoted values). A file holding secrets must not be readable
by group or others: it is refused with an error naming the file and the CS option.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from keystoneauth1 import plugin as ks_plugin
from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

OPTION_CLOUD_AUTH = "CloudAuth"
OPTION_CLOUDS_YAML = "CloudsYamlCloud"

#: Keys whose values are secrets: never logged, never in exception text.
SECRET_KEYS = frozenset(
    {
        "secret",
        "password",
        "application_credential_secret",
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
    }
)

AUTH_TYPES = (
    "password",
    "v3applicationcredential",
    "token",
    "v3oidcaccesstoken",
    "egi-checkin",
    "v3oidcrefreshtoken",
)

#: What DIRAC's ``key`` / ``secret`` stand for, per auth type.
_KEY_SECRET_MEANING = {
    "password": ("username", "password"),
    "v3applicationcredential": ("application_credential_id", "application_credential_secret"),
    "token": (None, "token"),
    "v3oidcaccesstoken": ("identity_provider", "access_token"),  # as libcloud's OIDC driver
    "egi-checkin": ("identity_provider", "refresh_token"),
    "v3oidcrefreshtoken": ("identity_provider", "refresh_token"),
}

EGI_CHECKIN_TOKEN_ENDPOINT = "https://aai.egi.eu/auth/realms/egi/protocol/openid-connect/token"
EGI_CHECKIN_DEFAULTS = {
    "token_endpoint": EGI_CHECKIN_TOKEN_ENDPOINT,
    "identity_provider": "egi.eu",
    "protocol": "openid",
    "client_id": "token-portal",
    "scope": "openid email profile eduperson_entitlement",
}

_SCOPE_KEYS = (
    "project_id",
    "project_name",
    "project_domain_id",
    "project_domain_name",
    "domain_id",
    "domain_name",
)


@dataclass(frozen=True)
class Credentials:
    """A CE's credential as read from its CloudAuth file. ``values`` never shows in repr."""

    auth_type: str
    values: Mapping[str, str] = field(repr=False)
    source: str  # e.g. "/opt/dirac/etc/cloud.auth [cloud.mysite.example]", for error messages
    path: str = ""  # the CloudAuth file
    section: str = "DEFAULT"

    def secrets(self) -> list[str]:
        """The secret values, so that error text can be scrubbed of them."""
        return [v for k, v in self.values.items() if k in SECRET_KEYS and v]

    def key_secret(self) -> tuple[str, str]:
        """DIRAC's (key, secret) pair, as libcloud drivers take it."""
        return self.values.get("key", ""), self.values.get("secret", "")


@dataclass(frozen=True)
class FileState:
    """What tells that a file was replaced or edited: a rotation writes a new file (new inode)
    or rewrites it (new size or mtime)."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int


def file_state(path: str) -> FileState | None:
    """The file's current state (None: missing or unreadable)."""
    if not path:
        return None
    path = os.path.expandvars(os.path.expanduser(path))
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileState(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_private_file(path: str, option: str) -> None:
    """Refuse a missing secrets file, or one that group or others can read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigurationError(option, f"file {path} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(option, f"cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            option,
            f"{path} holds secrets but is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}",
        )


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def load_cloud_auth(
    path: str, ce_name: str, option: str = OPTION_CLOUD_AUTH, default_auth_type: str = "password"
) -> Credentials:
    """The credential for `ce_name` in a DIRAC CloudAuth ini file ([<ce name>] or [DEFAULT]).
    `default_auth_type` applies when the file names none."""
    path = os.path.expandvars(os.path.expanduser(path))
    check_private_file(path, option)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (configparser.Error, UnicodeDecodeError) as exc:
        # configparser messages quote offending lines, which may hold secrets: keep only the type
        raise ConfigurationError(option, f"{path} is not a valid ini file ({type(exc).__name__})") from None
    section_name = ce_name if parser.has_section(ce_name) else "DEFAULT"
    section = parser[section_name]
    values = {key: _unquote(value) for key, value in section.items()}
    source = f"{path} [{section_name}]"
    auth_type = values.pop("auth_type", default_auth_type).strip().lower()
    if auth_type not in AUTH_TYPES:
        raise ConfigurationError(
            option, f"{source}: auth_type {auth_type!r} is not one of {', '.join(AUTH_TYPES)}"
        )
    if values.get("secret") == "PROXY":
        raise ConfigurationError(
            option,
            f"{source}: secret = PROXY (VOMS proxy authentication) is not supported; "
            "use an application credential or egi-checkin",
        )
    key_name, secret_name = _KEY_SECRET_MEANING[auth_type]
    if key_name and "key" in values:
        values.setdefault(key_name, values["key"])
    if "secret" in values:
        values.setdefault(secret_name, values["secret"])
    return Credentials(auth_type=auth_type, values=values, source=source, path=path, section=section_name)


def _require(values: Mapping[str, str], keys: tuple[str, ...], source: str, auth_type: str) -> None:
    missing = [k for k in keys if not values.get(k)]
    if missing:
        raise ConfigurationError(
            OPTION_CLOUD_AUTH, f"{source}: auth_type {auth_type} needs {', '.join(missing)}"
        )


def _scope(values: Mapping[str, str]) -> dict[str, str]:
    scope = {k: values[k] for k in _SCOPE_KEYS if values.get(k)}
    if scope.get("project_name") and not scope.get("project_domain_id") and not scope.get("project_domain_name"):
        # Keystone needs the domain of a project given by name
        scope["project_domain_name"] = values.get("domain_name", "Default")
    return scope


def openstack_auth_plugin(
    credentials: Credentials, identity: Mapping[str, str]
) -> ks_plugin.BaseAuthPlugin:
    """A keystoneauth plugin for `credentials`; `identity` holds the CE's non-secret options
    (auth_url, project_name, user_domain_name, ...), which the CloudAuth file may override."""
    values = {k: v for k, v in identity.items() if v}
    values.update({k: v for k, v in credentials.values.items() if v})
    auth_type, source = credentials.auth_type, credentials.source
    if auth_type == "egi-checkin":
        values = {**EGI_CHECKIN_DEFAULTS, **values}
    _require(values, ("auth_url",), source, auth_type)
    auth_url = values["auth_url"]
    scope = _scope(values)
    if auth_type == "password":
        _require(values, ("password",), source, auth_type)
        if not values.get("username") and not values.get("user_id"):
            _require(values, ("username",), source, auth_type)
        user_domain = {
            k: values[k] for k in ("user_domain_id", "user_domain_name") if values.get(k)
        }
        if not user_domain and not values.get("user_id"):
            user_domain = {"user_domain_name": values.get("domain_name", "Default")}
        return v3.Password(
            auth_url=auth_url,
            username=values.get("username"),
            user_id=values.get("user_id"),
            password=values["password"],
            **user_domain,
            **scope,
        )
    if auth_type == "v3applicationcredential":
        _require(values, ("application_credential_id", "application_credential_secret"), source, auth_type)
        return v3.ApplicationCredential(
            auth_url=auth_url,
            application_credential_id=values["application_credential_id"],
            application_credential_secret=values["application_credential_secret"],
        )
    if auth_type == "token":
        _require(values, ("token",), source, auth_type)
        return v3.Token(auth_url=auth_url, token=values["token"], **scope)
    _require(values, ("identity_provider", "protocol"), source, auth_type)
    if auth_type == "v3oidcaccesstoken":
        _require(values, ("access_token",), source, auth_type)
        return v3.OidcAccessToken(
            auth_url=auth_url,
            identity_provider=values["identity_provider"],
            protocol=values["protocol"],
            access_token=values["access_token"],
            **scope,
        )
    _require(values, ("refresh_token", "token_endpoint", "client_id"), source, auth_type)
    from JenniferDIRAC.Resources.Cloud.oidcrefresh import OidcRefreshToken, RefreshTokenExchange

    return OidcRefreshToken(
        auth_url=auth_url,
        identity_provider=values["identity_provider"],
        protocol=values["protocol"],
        exchange=RefreshTokenExchange(
            token_endpoint=values["token_endpoint"],
            refresh_token=values["refresh_token"],
            client_id=values["client_id"],
            client_secret=values.get("client_secret", ""),
            scope=values.get("scope", "openid"),
            cache_path=token_cache_path(credentials) if credentials.path else "",
        ),
        **scope,
    )


def token_cache_path(credentials: Credentials) -> str:
    """``<CloudAuth file>.<section>.oidc``: the token cache every process using this section shares."""
    section = "".join(c if c.isalnum() or c in "._-" else "_" for c in credentials.section)
    return f"{credentials.path}.{section}.oidc"


@dataclass
class CloudsYamlCloud:
    """What the OpenStack backend needs from one clouds.yaml cloud."""

    auth: ks_plugin.BaseAuthPlugin
    region_name: str | None
    interface: str
    verify: bool | str
    cert: str | tuple[str, str] | None
    secrets: list[str] = field(repr=False, default_factory=list)
    files: list[str] = field(default_factory=list)  # the clouds.yaml / secure.yaml read


def load_clouds_yaml(
    cloud: str,
    config_file: str | None = None,
    region_name: str | None = None,
    option: str = OPTION_CLOUDS_YAML,
) -> CloudsYamlCloud:
    """Cloud `cloud` of openstacksdk's config loader (``config_file``, or the standard
    clouds.yaml / secure.yaml locations). Files that hold this cloud's secrets must be private."""
    import openstack.config.loader
    import openstack.exceptions
    import yaml

    if config_file:
        config_file = os.path.expandvars(os.path.expanduser(config_file))
        if not os.path.isfile(config_file):
            raise ConfigurationError(option, f"clouds.yaml file {config_file} does not exist")
    try:
        loader = openstack.config.loader.OpenStackConfig(
            config_files=[config_file] if config_file else None, load_envvars=False
        )
        region = loader.get_one(cloud=cloud, region_name=region_name or None)
    except openstack.exceptions.ConfigException as exc:
        raise ConfigurationError(option, f"cloud {cloud!r}: {exc}") from None
    for filename in (loader.config_filename, loader.secure_config_filename):
        if not filename or not os.path.isfile(filename):
            continue
        with open(filename, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
        auth = ((raw.get("clouds") or {}).get(cloud) or {}).get("auth") or {}
        if any(k in SECRET_KEYS for k in auth):
            check_private_file(filename, option)
    auth_values = region.config.get("auth") or {}
    verify, cert = region.get_requests_verify_args()
    try:
        plugin = region.get_auth()
    except Exception as exc:  # noqa: BLE001 - keystoneauth loading raises many types
        raise ConfigurationError(option, f"cloud {cloud!r}: cannot build its auth plugin ({type(exc).__name__})") from None
    return CloudsYamlCloud(
        auth=plugin,
        region_name=region.region_name or None,
        interface=region.get_interface() or "public",
        verify=verify,
        cert=cert,
        secrets=[str(v) for k, v in auth_values.items() if k in SECRET_KEYS and v],
        files=[f for f in (loader.config_filename, loader.secure_config_filename) if f and os.path.isfile(f)],
    )
