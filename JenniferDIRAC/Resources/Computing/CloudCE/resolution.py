"""The image, flavor and networks a CE's VMs are created with: its CS references (an id or
``name:<name>``) resolved by the backend, which caches them for ReferenceCacheSeconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError, CloudUnreachable, ConfigurationError
from JenniferDIRAC.Resources.Cloud.model import Flavor

R = TypeVar("R")


def resolve_option(option: str, resolve: Callable[[R], object], reference: R):
    """resolve(reference) for the reference written in CS option `option`; a reference the cloud
    does not know is a ConfigurationError naming the option, while an outage or refused
    credentials stay what they are."""
    try:
        return resolve(reference) if reference else reference
    except (CloudUnreachable, CloudAuthError):
        raise
    except CloudError as exc:
        raise ConfigurationError(option, str(exc)) from None


def resolve_flavor(backend: CloudBackend, reference: str) -> Flavor:
    return resolve_option("Instance_Flavor", backend.resolve_flavor, reference)


def resolve_all(backend: CloudBackend, config: CloudCEConfig, flavor: str) -> tuple[str, Flavor, list[str]]:
    """Image id, the `flavor` reference resolved, and network ids."""
    image = resolve_option("Instance_Image", backend.resolve_image, config.image)
    resolved = resolve_flavor(backend, flavor)
    networks = resolve_option("Instance_Networks", backend.resolve_networks, list(config.networks))
    return image, resolved, networks if config.networks else []


def forget_stale(backend: CloudBackend, config: CloudCEConfig, stale: set[str]) -> None:
    """The cloud said these resolved ids ("image", "flavor", "network") no longer exist."""
    refs = {"image": [config.image], "flavor": [config.flavor], "network": list(config.networks)}
    for what in sorted(stale):
        for ref in refs.get(what, []):
            backend.forget_reference(what, ref)
