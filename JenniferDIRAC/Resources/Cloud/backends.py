"""``make_backend(config)``: the one place that branches on the cloud type.

``CloudType = OPENSTACK`` -> OpenStackBackend (openstacksdk); anything else -> LibcloudBackend.
`config` is a ``CloudCEConfig`` (ceconfig.py), which has already translated DIRAC's libcloud
``Driver_ex_*`` OpenStack options into ``config.openstack`` (OpenStackIdentity).

OpenStack credentials come from ``CloudsYamlCloud`` (+ ``CloudsYamlFile``) when set, else from
the CloudAuth file (``CloudAuth``, default ``<DIRAC root>/etc/cloud.auth``) combined with the
CE's identity options. Other clouds take DIRAC's key / secret from the CloudAuth file and the
``Driver_*`` options as driver arguments.

Every backend remembers the state (device, inode, size, mtime) of the credential files it was
built from (``CloudBackend.credential_files``); ``credentials_changed(backend)`` tells the CE, the
VMDirector and the commands that a rotated file must be read again (a new backend).
"""

from __future__ import annotations

import os

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.ceconfig import OPENSTACK, CloudCEConfig
from JenniferDIRAC.Resources.Cloud.credentials import file_state
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError


def default_cloud_auth_path() -> str:
    from DIRAC import rootPath

    return os.path.join(rootPath, "etc", "cloud.auth")


def _verify(ca_certificates: str) -> bool | str:
    return ca_certificates or True


def credentials_changed(backend: CloudBackend) -> bool:
    """True when a credential file the backend was built from was replaced or edited since."""
    return any(file_state(state.path) != state for state in backend.credential_files)


def _auth_url_option(config: CloudCEConfig, from_cloud_auth: bool) -> str:
    """The CS option the Keystone URL came from (named when Keystone says the URL is wrong)."""
    if from_cloud_auth:
        return "CloudAuth"
    driver_url = str(config.driver_options.get("ex_force_auth_url") or "").rstrip("/")
    if driver_url and config.openstack.auth_url.startswith(driver_url):
        return "Driver_ex_force_auth_url"
    return "AuthURL"


def make_backend(config: CloudCEConfig) -> CloudBackend:
    """The backend for a CE's configuration. Raises ConfigurationError naming the CS option."""
    backend, files = _make_backend(config)
    backend.credential_files = tuple(state for state in map(file_state, files) if state is not None)
    return backend


def _make_backend(config: CloudCEConfig) -> tuple[CloudBackend, list[str]]:
    from JenniferDIRAC.Resources.Cloud import credentials

    cloud_type = (config.cloud_type or "").strip()
    if not cloud_type:
        raise ConfigurationError("CloudType", "is not set")
    cloud_auth = config.cloud_auth or default_cloud_auth_path()

    if cloud_type.upper() == OPENSTACK:
        from JenniferDIRAC.Resources.Cloud.OpenStackBackend import (
            NOVA_MAX_USER_DATA_BYTES,
            OpenStackBackend,
        )

        identity = config.openstack
        common = {
            "max_user_data_bytes": int(config.max_user_data_bytes or NOVA_MAX_USER_DATA_BYTES),
            "timeout": float(config.http_timeout),
            "compute_endpoint_override": identity.compute_endpoint_override or None,
            "compute_api_version": identity.compute_api_version or None,
            "reference_ttl": float(config.reference_cache_seconds),
            "max_delete_threads": int(config.max_delete_threads),
        }
        if config.clouds_yaml_cloud:
            cloud = credentials.load_clouds_yaml(
                config.clouds_yaml_cloud, config.clouds_yaml_file or None, region_name=config.region or None
            )
            return OpenStackBackend(
                auth=cloud.auth,
                region_name=cloud.region_name,
                interface=identity.interface or cloud.interface,
                verify=config.ca_certificates or cloud.verify,
                cert=cloud.cert,
                secrets=cloud.secrets,
                auth_url_option="CloudsYamlCloud",
                **common,
            ), cloud.files
        creds = credentials.load_cloud_auth(
            cloud_auth, config.ce_name, default_auth_type=identity.auth_type or "password"
        )
        if not identity.auth_url and not creds.values.get("auth_url"):
            raise ConfigurationError(
                "AuthURL", "the Keystone URL is not set (AuthURL, Driver_ex_force_auth_url or auth_url in CloudAuth)"
            )
        plugin = credentials.openstack_auth_plugin(creds, identity.identity())
        return OpenStackBackend(
            auth=plugin,
            region_name=config.region or identity.region_name or creds.values.get("region_name") or None,
            interface=identity.interface or creds.values.get("interface") or "public",
            verify=_verify(config.ca_certificates),
            secrets=creds.secrets(),
            auth_url_option=_auth_url_option(config, bool(creds.values.get("auth_url"))),
            **common,
        ), [creds.path]

    from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend

    creds = credentials.load_cloud_auth(cloud_auth, config.ce_name)
    key, secret = creds.key_secret()
    if not key or not secret:
        # libcloud would send an empty AWSAccessKeyId (or key) and get an opaque refusal
        raise ConfigurationError(
            "CloudAuth",
            f"{creds.source}: no key and secret for CE {config.ce_name}; add a [{config.ce_name}] "
            "section (or [DEFAULT]) with key = ... and secret = ...",
        )
    driver_options = dict(config.driver_options)
    if config.region and "region" not in driver_options:
        driver_options["region"] = config.region
    return LibcloudBackend(
        cloud_type=cloud_type,
        key=key,
        secret=secret,
        driver_options=driver_options,
        auth=creds.values,  # the driver profile reads its own keys (Azure: tenant_id, subscription_id)
        reference_ttl=float(config.reference_cache_seconds),
        max_user_data_bytes=config.max_user_data_bytes,
        max_instances=config.max_instances,
        max_cores=config.max_cores,
        max_ram_mb=config.max_ram_mb,
    ), [creds.path]
