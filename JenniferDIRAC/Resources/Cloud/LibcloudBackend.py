"""CloudBackend on apache-libcloud: EC2, Azure, GCE, OpenNebula and custom drivers.

``CloudType`` is a libcloud Provider name (``EC2``, ``AZURE_ARM``, ``GCE``, ``OPENNEBULA``, ...)
or the dotted path of a NodeDriver class, registered with libcloud's ``set_driver`` (as DIRAC's
CloudCE does). The driver is built as ``Driver(key, secret=secret, **driver_options)``, where
key/secret come from the CloudAuth file and ``driver_options`` from the CE's ``Driver_*``
options.

Owner tags are written as the node's tags / metadata (``ex_metadata``; EC2 tags). Where the
driver can filter on tags server-side (EC2: ``ex_filters={"tag:jdirac-ce": ...}``) the listing
asks only for this CE's nodes; otherwise it lists every node and filters on the tags. Either way
ownership is decided by the tags, never by the name. Terminated nodes (EC2 lists them for an
hour) are left out: to the CE they are gone.

EC2 accepts at most 16 KiB of user data (raw, before base64): ``max_user_data_bytes`` enforces
it (moto does not). EC2 creates carry the VM name as client token, so a repeated create of the
same VM returns the same instance.

Quota: libcloud has no generic quota API. ``quota()`` reports unlimited values, unless caps are
configured (``max_instances``, ``max_cores``, ``max_ram_mb``): then usage is counted from one
listing of every live node of the account.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from datetime import timezone
from typing import Any

import requests
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError, ProviderError
from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize
from libcloud.compute.providers import Provider, get_driver, set_driver
from libcloud.compute.types import NodeState

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend, ReferenceCache
from JenniferDIRAC.Resources.Cloud.errors import (
    CloudAuthError,
    CloudError,
    CloudUnreachable,
    ConfigurationError,
    NotFound,
    QuotaExceeded,
)
from JenniferDIRAC.Resources.Cloud.model import (
    TAG_CE,
    TAG_INSTALLATION,
    VM,
    Flavor,
    OwnerTags,
    Quota,
    VMSpec,
    VMState,
)
from JenniferDIRAC.Resources.Cloud.redaction import Redactor
from JenniferDIRAC.Resources.Cloud.resolving import reference_name, single_match

EC2_MAX_USER_DATA_BYTES = 16 * 1024
DEFAULT_MAX_USER_DATA_BYTES = 65535

_STATES = {
    NodeState.PENDING: VMState.BUILD,
    NodeState.STARTING: VMState.BUILD,
    NodeState.RUNNING: VMState.ACTIVE,
    NodeState.REBOOTING: VMState.ACTIVE,
    NodeState.RECONFIGURING: VMState.ACTIVE,
    NodeState.MIGRATING: VMState.ACTIVE,
    NodeState.STOPPING: VMState.ACTIVE,
    NodeState.STOPPED: VMState.SHUTOFF,
    NodeState.SUSPENDED: VMState.SHUTOFF,
    NodeState.ERROR: VMState.ERROR,
}

_QUOTA_CODES = ("InstanceLimitExceeded", "VcpuLimitExceeded", "InsufficientInstanceCapacity",
                "QuotaExceeded", "quota exceeded", "Quota exceeded")
_NOT_FOUND_CODES = (".NotFound", "NotFound", "ResourceNotFound")
_THROTTLE_CODES = ("RequestLimitExceeded", "Throttling", "ServiceUnavailable", "InternalError",
                   "Unavailable")


def driver_class(cloud_type: str, option: str = "CloudType") -> type[NodeDriver]:
    """The libcloud NodeDriver class for a Provider name or a dotted class path."""
    if not cloud_type:
        raise ConfigurationError(option, "is not set")
    if "." in cloud_type:
        try:
            return get_driver(cloud_type)
        except AttributeError:
            module, _, klass = cloud_type.rpartition(".")
            try:
                set_driver(cloud_type, module, klass)
                return get_driver(cloud_type)
            except (ImportError, AttributeError) as exc:
                raise ConfigurationError(option, f"cannot load driver class {cloud_type}: {exc}") from None
    name = cloud_type.upper()
    provider = getattr(Provider, name, None)
    if provider is None:
        raise ConfigurationError(option, f"{cloud_type!r} is not a libcloud provider name")
    try:
        return get_driver(provider)
    except (AttributeError, ImportError) as exc:
        raise ConfigurationError(option, f"libcloud driver {name} cannot be loaded: {exc}") from None


def driver_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """``Driver_*`` values as drivers expect them: the CS gives strings, but ``secure`` is a
    bool and ``port`` / ``timeout`` are numbers."""
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, str):
            text = value.strip()
            if key == "secure" or text.lower() in ("true", "false"):
                value = text.lower() in ("1", "true", "yes")
            elif key in ("port", "timeout") and text.isdigit():
                value = int(text)
        kwargs[key] = value
    return kwargs


def _params(function) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()


def _node_metadata(node: Node) -> dict[str, str]:
    extra = node.extra or {}
    for key in ("tags", "metadata", "labels"):
        value = extra.get(key)
        if isinstance(value, dict) and "items" in value and isinstance(value["items"], list):
            value = {i.get("key"): i.get("value") for i in value["items"] if isinstance(i, dict)}
        if isinstance(value, dict) and value:
            return {str(k): str(v) for k, v in value.items() if k is not None and v is not None}
    return {}


def _vcpus(size: NodeSize) -> int:
    extra = size.extra or {}
    for key in ("cpu", "vcpu", "vcpus", "cpus", "numberOfCores"):
        value = extra.get(key)
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return 0


class LibcloudBackend(CloudBackend):
    """Any libcloud compute driver."""

    def __init__(
        self,
        *,
        cloud_type: str,
        key: str,
        secret: str,
        driver_options: Mapping[str, Any] | None = None,
        max_user_data_bytes: int | None = None,
        max_instances: int | None = None,
        max_cores: int | None = None,
        max_ram_mb: int | None = None,
        driver: NodeDriver | None = None,
    ) -> None:
        self._redact = Redactor([secret, key] if secret else [])
        cls = driver_class(cloud_type)
        self.cloud_type = cloud_type
        if driver is None:
            try:
                driver = cls(key, secret=secret, **driver_kwargs(driver_options or {}))
            except TypeError as exc:
                raise ConfigurationError("Driver_*", self._redact(f"driver {cls.__name__}: {exc}")) from None
        self.driver = driver
        self._is_ec2 = getattr(driver, "type", None) == Provider.EC2 or cls.__name__.startswith("EC2")
        if max_user_data_bytes is None:
            max_user_data_bytes = EC2_MAX_USER_DATA_BYTES if self._is_ec2 else DEFAULT_MAX_USER_DATA_BYTES
        self.max_user_data_bytes = max_user_data_bytes
        self._caps = (max_instances, max_cores, max_ram_mb)
        self._create_params = _params(driver.create_node)
        self._list_params = _params(driver.list_nodes)
        self._lock = threading.Lock()
        self._images: ReferenceCache[NodeImage] = ReferenceCache()
        self._networks: ReferenceCache[Any] = ReferenceCache()
        self._all_sizes: list[NodeSize] | None = None

    # --- errors ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except CloudError:
            raise
        except Exception as exc:  # noqa: BLE001 - drivers raise bare Exception for API errors
            raise self._translate(exc, what) from None

    def _translate(self, exc: Exception, what: str) -> CloudError:
        message = str(exc) or type(exc).__name__
        code = getattr(exc, "code", None) or getattr(exc, "http_code", None)
        text = self._redact(f"{what}: {type(exc).__name__}: {message}" + (f" (HTTP {code})" if code else ""))
        if isinstance(exc, InvalidCredsError):
            return CloudAuthError(text)
        if isinstance(exc, RateLimitReachedError):
            return CloudUnreachable(text)
        if any(c in message for c in _THROTTLE_CODES):
            return CloudUnreachable(text)
        if any(c in message for c in _QUOTA_CODES):
            return QuotaExceeded(text)
        if any(c in message for c in _NOT_FOUND_CODES):
            return NotFound(text)
        if isinstance(code, int):
            if code in (401, 403):
                return CloudAuthError(text)
            if code == 404:
                return NotFound(text)
            if code == 413:
                return QuotaExceeded(text)
            if code >= 500 or code == 429:
                return CloudUnreachable(text)
        if isinstance(exc, (requests.exceptions.RequestException, socket.error, ssl.SSLError, TimeoutError)):
            return CloudUnreachable(text)
        if isinstance(exc, (BaseHTTPError, ProviderError, LibcloudError)):
            return CloudError(text)
        return CloudError(text)

    # --- VMs ---------------------------------------------------------------------------------
    def _node_to_vm(self, node: Node) -> VM:
        state = _STATES.get(node.state, VMState.UNKNOWN)
        extra = node.extra or {}
        if self._is_ec2 and extra.get("status") == "shutting-down":
            state = VMState.DELETING
        if self._is_ec2 and extra.get("status") == "stopped":
            state = VMState.SHUTOFF
        created = node.created_at
        if created is not None:
            created = (created.replace(tzinfo=timezone.utc) if created.tzinfo is None
                       else created.astimezone(timezone.utc))
        fault = ""
        if state is VMState.ERROR:
            reason = extra.get("reason") or extra.get("fault") or extra.get("state_reason") or ""
            fault = str(reason.get("message", reason) if isinstance(reason, dict) else reason)
        size = extra.get("instance_type") or extra.get("flavorId") or node.size or ""
        image = extra.get("image_id") or extra.get("imageId") or node.image or ""
        return VM(
            id=str(node.id),
            name=node.name or "",
            state=state,
            created=created,
            metadata=_node_metadata(node),
            fault=fault,
            flavor_id=str(getattr(size, "id", size) or ""),
            image_id=str(getattr(image, "id", image) or ""),
        )

    def _list_nodes(self, owner: OwnerTags | None, name: str | None = None) -> list[Node]:
        kwargs: dict[str, Any] = {}
        if self._is_ec2 and "ex_filters" in self._list_params:
            filters: dict[str, Any] = {}
            if owner is not None:
                filters[f"tag:{TAG_CE}"] = owner.ce
                filters[f"tag:{TAG_INSTALLATION}"] = owner.installation
            if name is not None:
                filters["tag:Name"] = name
            if filters:
                kwargs["ex_filters"] = filters
        nodes = self.driver.list_nodes(**kwargs)
        return [n for n in nodes if n.state != NodeState.TERMINATED]

    def list_vms(self, owner: OwnerTags) -> list[VM]:
        with self._calling("listing nodes"):
            nodes = self._list_nodes(owner)
        vms = [self._node_to_vm(node) for node in nodes]
        return [vm for vm in vms if owner.owns(vm.owner)]

    def find_vm_by_name(self, name: str, owner: OwnerTags) -> VM | None:
        with self._calling(f"looking up node {name}"):
            nodes = self._list_nodes(owner, name=name)
        for node in nodes:
            vm = self._node_to_vm(node)
            if vm.name == name and owner.owns(vm.owner):
                return vm
        return None

    def create_vm(self, spec: VMSpec) -> VM:
        self.check_user_data_size(spec)
        params = self._create_params
        image = self._images_by_id().get(spec.image_id) or NodeImage(
            id=spec.image_id, name=None, driver=self.driver
        )
        size = self._sizes_by_id().get(spec.flavor_id) or NodeSize(
            id=spec.flavor_id, name=spec.flavor_id, ram=0, disk=0, bandwidth=None, price=None,
            driver=self.driver
        )
        kwargs: dict[str, Any] = {"name": spec.name, "image": image, "size": size}
        if "ex_userdata" in params:
            kwargs["ex_userdata"] = spec.user_data
        elif "ex_customdata" in params:
            kwargs["ex_customdata"] = spec.user_data
        elif "ex_metadata" not in params:
            raise CloudError(f"driver {type(self.driver).__name__} takes no user data")
        metadata = dict(spec.metadata)
        if "ex_metadata" in params:
            if "ex_userdata" not in params and "ex_customdata" not in params:
                metadata["user-data"] = spec.user_data.decode("utf-8", "replace")
            kwargs["ex_metadata"] = metadata
        elif "ex_tags" in params:
            kwargs["ex_tags"] = metadata
        if "ex_clienttoken" in params:
            kwargs["ex_clienttoken"] = spec.name  # EC2 idempotency: a repeated create is a no-op
        if spec.key_name:
            for name in ("ex_keyname", "ex_key_name"):
                if name in params:
                    kwargs[name] = spec.key_name
                    break
        if spec.security_groups:
            if "ex_security_groups" in params:
                kwargs["ex_security_groups"] = list(spec.security_groups)
            else:
                raise CloudError(f"driver {type(self.driver).__name__} takes no security groups")
        if spec.network_ids:
            networks = [self._networks_by_id()[n] for n in spec.network_ids]
            if "networks" in params:
                kwargs["networks"] = networks
            elif "ex_subnet" in params:
                if len(networks) != 1:
                    raise CloudError("EC2 takes exactly one subnet in Instance_Networks")
                kwargs["ex_subnet"] = networks[0]
            elif "ex_network" in params:
                kwargs["ex_network"] = networks[0]
        if spec.availability_zone:
            if "ex_availability_zone" in params:
                kwargs["ex_availability_zone"] = spec.availability_zone
            elif "location" in params:
                kwargs["location"] = self._location(spec.availability_zone)
        if spec.config_drive and "ex_config_drive" in params:
            kwargs["ex_config_drive"] = True
        with self._calling(f"creating node {spec.name}"):
            node = self.driver.create_node(**kwargs)
        vm = self._node_to_vm(node)
        vm.name = spec.name
        vm.metadata = dict(spec.metadata) | {k: v for k, v in vm.metadata.items() if k not in spec.metadata}
        if vm.state not in (VMState.ACTIVE, VMState.ERROR):
            vm.state = VMState.BUILD
        return vm

    def _location(self, zone: str):
        with self._calling("listing locations"):
            locations = self.driver.list_locations()
        for location in locations:
            extra = location.extra or {}
            if zone in (location.name, location.id, extra.get("availability_zone"), getattr(location, "availability_zone", None) and location.availability_zone.name):
                return location
        raise NotFound(f"no location / availability zone {zone!r}")

    def delete_vms(self, vm_ids: list[str]) -> dict[str, str]:
        errors: dict[str, str] = {}
        for vm_id in vm_ids:
            node = Node(id=vm_id, name=None, state=None, public_ips=[], private_ips=[], driver=self.driver)
            try:
                with self._calling(f"deleting node {vm_id}"):
                    self.driver.destroy_node(node)
            except NotFound:
                continue
            except CloudError as exc:
                errors[vm_id] = str(exc)
        if errors:
            # Drivers do not reliably say "not found" (EC2 through moto: an empty HTTP 400);
            # one listing tells which of the failed VMs are in fact gone.
            try:
                with self._calling("listing nodes after failed deletes"):
                    if self._is_ec2 and "ex_filters" in self._list_params:
                        nodes = self.driver.list_nodes(ex_filters={"instance-id": list(errors)})
                    else:
                        nodes = self.driver.list_nodes()
            except CloudError:
                return errors
            alive = {str(n.id) for n in nodes if n.state != NodeState.TERMINATED}
            errors = {vm_id: error for vm_id, error in errors.items() if vm_id in alive}
        return errors

    def console_log(self, vm_id: str) -> str:
        getter = getattr(self.driver, "ex_get_console_output", None)
        if getter is None:
            return ""
        node = Node(id=vm_id, name=None, state=None, public_ips=[], private_ips=[], driver=self.driver)
        with self._calling(f"reading the console of node {vm_id}"):
            result = getter(node)
        if isinstance(result, dict):
            return result.get("output") or ""
        return str(result or "")

    def quota(self) -> Quota:
        max_instances, max_cores, max_ram_mb = self._caps
        if max_instances is None and max_cores is None and max_ram_mb is None:
            return Quota()
        with self._calling("listing nodes for quota caps"):
            nodes = self._list_nodes(None)
        sizes = self._sizes_by_id() if (max_cores is not None or max_ram_mb is not None) else {}
        cores = ram = 0
        for node in nodes:
            size = sizes.get(self._node_to_vm(node).flavor_id)
            if size is not None:
                cores += _vcpus(size)
                ram += int(size.ram or 0)
        return Quota(
            max_instances=max_instances,
            used_instances=len(nodes),
            max_cores=max_cores,
            used_cores=cores,
            max_ram_mb=max_ram_mb,
            used_ram_mb=ram,
        )

    # --- references --------------------------------------------------------------------------
    def _images_by_id(self) -> dict[str, NodeImage]:
        return {image.id: image for image in self._images.values()}

    def _sizes_by_id(self) -> dict[str, NodeSize]:
        with self._lock:
            sizes = self._all_sizes
        if sizes is None:
            with self._calling("listing sizes"):
                sizes = list(self.driver.list_sizes())
            with self._lock:
                self._all_sizes = sizes
        return {size.id: size for size in sizes}

    def _networks_by_id(self) -> dict[str, Any]:
        return {net.id: net for net in self._networks.values()}

    def resolve_image(self, ref: str) -> str:
        return self._images.get(ref, self._find_image).id

    def _find_image(self, ref: str) -> NodeImage:
        name = reference_name(ref)
        with self._calling(f"resolving image {ref}"):
            if name is None:
                try:
                    found = [self.driver.get_image(ref)]
                except NotImplementedError:
                    found = [i for i in self.driver.list_images() if i.id == ref]
                except Exception as exc:  # noqa: BLE001
                    if isinstance(self._translate(exc, ""), NotFound):
                        found = []
                    else:
                        raise
            elif self._is_ec2 and "ex_filters" in _params(self.driver.list_images):
                found = list(self.driver.list_images(ex_filters={"name": name}))
            else:
                found = [i for i in self.driver.list_images() if i.name == name]
        return single_match("image", ref, [i for i in found if i is not None])

    def resolve_flavor(self, ref: str) -> Flavor:
        name = reference_name(ref)
        sizes = self._sizes_by_id().values()
        found = [s for s in sizes if (s.name == name if name is not None else s.id == ref)]
        size = single_match("flavor", ref, found)
        return Flavor(id=size.id, name=size.name or "", vcpus=_vcpus(size), ram_mb=int(size.ram or 0))

    def resolve_networks(self, refs: list[str]) -> list[str]:
        return [self._networks.get(ref, self._find_network).id for ref in refs]

    def _find_network(self, ref: str) -> Any:
        name = reference_name(ref)
        lister = getattr(self.driver, "ex_list_subnets", None) if self._is_ec2 else None
        lister = lister or getattr(self.driver, "ex_list_networks", None)
        if lister is None:
            raise CloudError(f"driver {type(self.driver).__name__} cannot list networks")
        with self._calling(f"resolving network {ref}"):
            networks = list(lister())
        found = [
            n for n in networks
            if (n.name == name or (n.extra or {}).get("tags", {}).get("Name") == name
                if name is not None else n.id == ref)
        ]
        return single_match("network", ref, found)
