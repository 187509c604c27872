"""The libcloud drivers JenniferDIRAC supports, each a DriverProfile declaring what it does.

``CloudType`` is a Provider name of a profile (``EC2``, ``AZURE_ARM``) or the dotted path of a
NodeDriver class that is (a subclass of) a profile's driver, e.g.
``libcloud.compute.drivers.openstack.OpenStack_2_NodeDriver``. Every other libcloud provider is
refused at configuration: GCE and OpenNebula among them (libcloud's GCE driver corrupts gzipped
user data, OpenNebula's takes none).
"""

from __future__ import annotations

from libcloud.compute.base import NodeDriver
from libcloud.compute.providers import Provider, get_driver, set_driver

from JenniferDIRAC.Resources.Cloud.drivers.azure import AzureProfile
from JenniferDIRAC.Resources.Cloud.drivers.base import DriverProfile
from JenniferDIRAC.Resources.Cloud.drivers.ec2 import EC2Profile
from JenniferDIRAC.Resources.Cloud.drivers.openstack_libcloud import OpenStackLibcloudProfile
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

PROFILES: tuple[type[DriverProfile], ...] = (EC2Profile, AzureProfile, OpenStackLibcloudProfile)
OPTION = "CloudType"


def supported() -> str:
    names = [n for p in PROFILES for n in p.provider_names]
    return ", ".join(["OPENSTACK", *names, "the class path of an OpenStack, EC2 or Azure libcloud driver"])


def _load_class(cloud_type: str) -> type[NodeDriver]:
    try:
        return get_driver(cloud_type)
    except AttributeError:
        module, _, klass = cloud_type.rpartition(".")
        try:
            set_driver(cloud_type, module, klass)
            return get_driver(cloud_type)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(OPTION, f"cannot load driver class {cloud_type}: {exc}") from None


def refuse_unsupported(provider_name: str) -> None:
    """Raise the CloudType ConfigurationError for a libcloud Provider name no profile serves."""
    if not any(provider_name.upper() in p.provider_names for p in PROFILES):
        raise ConfigurationError(OPTION, f"{provider_name.upper()} is not supported (supported: {supported()})")


def resolve(cloud_type: str) -> tuple[type[DriverProfile], type[NodeDriver]]:
    """(profile, libcloud driver class) for a CloudType. Raises ConfigurationError."""
    if not cloud_type:
        raise ConfigurationError(OPTION, "is not set")
    if "." in cloud_type:
        cls = _load_class(cloud_type)
        for profile in PROFILES:
            if isinstance(cls, type) and issubclass(cls, profile.node_driver):
                return profile, cls
        raise ConfigurationError(OPTION, f"driver class {cloud_type} is not supported (supported: {supported()})")
    name = cloud_type.upper()
    if getattr(Provider, name, None) is None:
        raise ConfigurationError(OPTION, f"{cloud_type!r} is not a libcloud provider name")
    refuse_unsupported(name)
    return next(p for p in PROFILES if name in p.provider_names), get_driver(getattr(Provider, name))
