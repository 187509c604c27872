"""CloudBackend on apache-libcloud: EC2, Azure ARM, and OpenStack through libcloud's driver.

``CloudType`` selects a driver profile (``Resources/Cloud/drivers``): a Provider name (``EC2``,
``AZURE_ARM``) or the dotted path of a NodeDriver class that is (a subclass of) a supported
driver. Each profile declares how its driver is built from the CE's ``Driver_*`` options and
its CloudAuth section, how a VM is created (user data, owner tags, networks), listed, typed on
failure and what quota it reports; this module holds what is common and never branches on the
cloud. Other providers (GCE, OpenNebula, ...) are refused with a ConfigurationError naming
CloudType.

Concurrency: every call leases a driver of its own from a pool (drivers/pool.py): libcloud keeps
the last response on the connection, so one driver shared by threads can hand a create another
VM's answer.

Ownership is decided by the owner tags, never by the name; terminated nodes (EC2 lists them for
an hour) are left out. Quota: the cloud's own where the profile has one (OpenStack: Nova's
limits); else unlimited, unless caps are configured (``max_instances``, ``max_cores``,
``max_ram_mb``): then usage is counted from one listing of every live node of the account.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import Any

import requests
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.base import NodeDriver, NodeImage, NodeSize

from JenniferDIRAC.Resources.Cloud import drivers
from JenniferDIRAC.Resources.Cloud.backend import DEFAULT_REFERENCE_TTL, CloudBackend, ReferenceCache
from JenniferDIRAC.Resources.Cloud.drivers.base import DriverProfile
from JenniferDIRAC.Resources.Cloud.drivers.ec2 import EC2_MAX_USER_DATA_BYTES
from JenniferDIRAC.Resources.Cloud.drivers.pool import DriverPool
from JenniferDIRAC.Resources.Cloud.errors import (
    CloudAuthError,
    CloudError,
    CloudNoAnswer,
    CloudUnreachable,
    NotFound,
    QuotaExceeded,
    RequestRejected,
    translated_errors,
)
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, OwnerTags, Quota, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.noanswer import GATEWAY_TIMEOUT, sent_without_answer
from JenniferDIRAC.Resources.Cloud.redaction import Redactor
from JenniferDIRAC.Resources.Cloud.resolving import Lookup, StaleReference, reference_name, single_match

__all__ = ["EC2_MAX_USER_DATA_BYTES", "LibcloudBackend", "driver_kwargs"]

_SECRET_AUTH_KEYS = ("secret", "client_secret", "password", "token")


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


def _vcpus(size: NodeSize) -> int:
    extra = size.extra or {}
    for key in ("cpu", "vcpu", "vcpus", "cpus", "numberOfCores"):
        value = extra.get(key)
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return int(getattr(size, "vcpus", 0) or 0)


def _status(exc: Exception) -> int | None:
    code = getattr(exc, "code", None) or getattr(exc, "http_code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


class LibcloudBackend(CloudBackend):
    """A libcloud compute driver, as its DriverProfile declares it."""

    def __init__(
        self,
        *,
        cloud_type: str,
        key: str,
        secret: str,
        driver_options: Mapping[str, Any] | None = None,
        auth: Mapping[str, str] | None = None,
        max_user_data_bytes: int | None = None,
        max_instances: int | None = None,
        max_cores: int | None = None,
        max_ram_mb: int | None = None,
        reference_ttl: float = DEFAULT_REFERENCE_TTL,
    ) -> None:
        auth = dict(auth or {})
        self._redact = Redactor([s for s in (secret, key) if s] + [auth[k] for k in _SECRET_AUTH_KEYS if auth.get(k)])
        profile_cls, driver_cls = drivers.resolve(cloud_type)
        self.cloud_type = cloud_type
        self.profile: DriverProfile = profile_cls(driver_cls, key, secret, driver_kwargs(driver_options or {}), auth)
        self._pool: DriverPool[NodeDriver] = DriverPool(self.profile.new_driver)  # built at first use
        self.max_user_data_bytes = max_user_data_bytes or self.profile.max_user_data_bytes
        self._caps = (max_instances, max_cores, max_ram_mb)
        self._lock = threading.Lock()
        self._reference_ttl = reference_ttl
        self._images: ReferenceCache[NodeImage] = ReferenceCache(reference_ttl)
        self._networks: ReferenceCache[Any] = ReferenceCache(reference_ttl)
        profile = self.profile
        #: how references are looked up (resolving.Lookup), by the profile's driver calls
        self._image_lookup: Lookup[NodeImage] = Lookup(
            "image",
            by_name=lambda driver, name: profile.find_image(driver, None, name),
            by_id=lambda driver, ref: profile.find_image(driver, ref, None),
            no_match=(NotFound, RequestRejected),  # EC2 and Azure refuse an unknown id
        )
        self._network_lookup: Lookup[Any] = Lookup(
            "network",
            by_name=lambda driver, name: [n for n in profile.find_networks(driver) if profile.network_name(n) == name],
            by_id=lambda driver, ref: [n for n in profile.find_networks(driver) if n.id == ref],
        )
        self._all_sizes: tuple[list[NodeSize], float] | None = None  # (sizes, listed at)

    # --- calls and errors --------------------------------------------------------------------
    @contextlib.contextmanager
    def _driver(self, what: str) -> Iterator[NodeDriver]:
        """A driver no other thread uses during the call; libcloud errors become CloudErrors
        (building a driver may call the cloud too: Azure fetches its token)."""
        # drivers raise bare Exception for API errors: every Exception is translated
        with translated_errors(what, self._translate), self._pool.lease() as driver:
            yield driver

    def _translate(self, exc: Exception, what: str) -> CloudError:
        message = getattr(exc, "message", None) if isinstance(exc, BaseHTTPError) else None
        message = str(message if message is not None else exc) or type(exc).__name__
        status = _status(exc)
        text = self._redact(f"{what}: {type(exc).__name__}: {message}" + (f" (HTTP {status})" if status else ""))
        stale = self.profile.stale_reference(message)
        if stale is not None:
            return StaleReference(stale, text)
        kind = self.profile.classify(exc, message, status)
        if kind is not None:
            return kind(text)
        if isinstance(exc, InvalidCredsError):
            return CloudAuthError(text)
        if isinstance(exc, RateLimitReachedError):
            return CloudUnreachable(text)
        if status is not None:
            if status in (401, 403):
                return CloudAuthError(text)
            if status == 404:
                return NotFound(text)
            if status == 413:
                return QuotaExceeded(text)
            if status >= 500 or status == 429:
                return CloudNoAnswer(text) if status == GATEWAY_TIMEOUT else CloudUnreachable(text)
            if 400 <= status < 500:
                return RequestRejected(text)
        if isinstance(exc, (requests.exceptions.RequestException, OSError, ssl.SSLError)):
            return CloudNoAnswer(text) if sent_without_answer(exc) else CloudUnreachable(text)
        return CloudError(text)  # a garbled answer (MalformedResponseError), a driver bug

    # --- VMs ---------------------------------------------------------------------------------
    def _vm(self, driver: NodeDriver, node, read=None) -> VM:
        vm = (read or self.profile.node_vm)(driver, node)
        created = node.created_at
        if created is not None:
            vm.created = (created.replace(tzinfo=UTC) if created.tzinfo is None
                          else created.astimezone(UTC))
        return vm

    def list_vms(self, owner: OwnerTags) -> list[VM]:
        with self._driver("listing nodes") as driver:
            vms = [self._vm(driver, node) for node in self.profile.list_nodes(driver, owner)]
        return [vm for vm in vms if owner.owns(vm.owner)]

    def list_project_vms(self) -> list[VM]:
        """Every JenniferDIRAC VM (one with an installation tag) of what this account sees
        where the CE runs, whatever its installation, in one listing: EC2's region, Azure's
        resource group, OpenStack's project (DriverProfile.list_project_nodes)."""
        with self._driver("listing every installation's nodes") as driver:
            nodes = self.profile.list_project_nodes(driver)
            vms = [self._vm(driver, node, self.profile.project_vm) for node in nodes]
        return [vm for vm in vms if vm.owner is not None]

    def find_vm_by_name(self, name: str, owner: OwnerTags) -> VM | None:
        with self._driver(f"looking up node {name}") as driver:
            for node in self.profile.list_nodes(driver, owner, name=name):
                vm = self._vm(driver, node)
                if vm.name == name and owner.owns(vm.owner):
                    return vm
        return None

    def create_vm(self, spec: VMSpec) -> VM:
        self.check_user_data_size(spec)
        sizes = self._sizes_by_id()
        networks = [self._network(n) for n in spec.network_ids]
        image = self._images_by_id().get(spec.image_id)
        with self._driver(f"creating node {spec.name}") as driver:
            size = sizes.get(spec.flavor_id) or NodeSize(
                id=spec.flavor_id, name=spec.flavor_id, ram=0, disk=0, bandwidth=None, price=None, driver=driver
            )
            kwargs = self.profile.create_arguments(
                driver, spec, image or self.profile.image_object(driver, spec.image_id), size, networks
            )
            try:
                node = driver.create_node(**kwargs)
            except Exception:
                with contextlib.suppress(Exception):  # the create's own error is what matters
                    self.profile.create_failed(driver, kwargs)
                raise
            vm = self._vm(driver, node)
        vm.name = spec.name
        vm.metadata = dict(spec.metadata) | {k: v for k, v in vm.metadata.items() if k not in spec.metadata}
        if vm.state not in (VMState.ACTIVE, VMState.ERROR):
            vm.state = VMState.BUILD
        return vm

    def delete_vms(self, vm_ids: list[str]) -> dict[str, str]:
        errors: dict[str, str] = {}
        for vm_id in vm_ids:
            try:
                with self._driver(f"deleting node {vm_id}") as driver:
                    self.profile.destroy(driver, vm_id)
            except NotFound:
                continue
            except CloudError as exc:
                errors[vm_id] = str(exc)
        if errors:
            # Drivers do not reliably say "not found" (EC2 through moto: an empty HTTP 400);
            # one listing tells which of the failed VMs are in fact gone.
            try:
                with self._driver("listing nodes after failed deletes") as driver:
                    alive = self.profile.alive_ids(driver, list(errors))
            except CloudError:
                return errors
            errors = {vm_id: error for vm_id, error in errors.items() if vm_id in alive}
        return errors

    def console_log(self, vm_id: str) -> str:
        with self._driver(f"reading the console of node {vm_id}") as driver:
            return self.profile.console_output(driver, vm_id)

    def quota(self) -> Quota:
        max_instances, max_cores, max_ram_mb = self._caps
        if max_instances is None and max_cores is None and max_ram_mb is None:
            with self._driver("reading the quota") as driver:
                return self.profile.quota(driver) or Quota()
        sizes = self._sizes_by_id() if (max_cores is not None or max_ram_mb is not None) else {}
        with self._driver("listing nodes for quota caps") as driver:
            flavors = [self.profile.node_vm(driver, node).flavor_id for node in self.profile.list_nodes(driver, None)]
        cores = ram = 0
        for flavor in flavors:
            size = sizes.get(flavor)
            if size is not None:
                cores += _vcpus(size)
                ram += int(size.ram or 0)
        return Quota(max_instances=max_instances, used_instances=len(flavors), max_cores=max_cores,
                     used_cores=cores, max_ram_mb=max_ram_mb, used_ram_mb=ram)

    def close(self) -> None:
        self._pool.clear()

    # --- references --------------------------------------------------------------------------
    def _images_by_id(self) -> dict[str, NodeImage]:
        return {image.id: image for image in self._images.values()}

    def _sizes_by_id(self) -> dict[str, NodeSize]:
        with self._lock:
            cached = self._all_sizes
        if cached is not None and time.monotonic() - cached[1] < self._reference_ttl:
            sizes = cached[0]
        else:
            with self._driver("listing sizes") as driver:
                sizes = self.profile.list_sizes(driver)
            with self._lock:
                self._all_sizes = (sizes, time.monotonic())
        return {size.id: size for size in sizes}

    def forget_reference(self, what: str, ref: str) -> None:
        super().forget_reference(what, ref)
        if what == "flavor":  # flavors come from one listing of sizes
            with self._lock:
                self._all_sizes = None

    def resolve_image(self, ref: str) -> str:
        return self._images.get(ref, lambda r: self._image_lookup.find(r, self._driver)).id

    def resolve_flavor(self, ref: str) -> Flavor:
        name = reference_name(ref)
        sizes = self._sizes_by_id().values()
        found = [s for s in sizes if (s.name == name if name is not None else s.id == ref)]
        size = single_match("flavor", ref, found)
        return Flavor(id=size.id, name=size.name or "", vcpus=_vcpus(size), ram_mb=int(size.ram or 0))

    def resolve_networks(self, refs: list[str]) -> list[str]:
        return [self._network(ref).id for ref in refs]

    def _network(self, ref: str) -> Any:
        """The driver's network object `ref` names (the create takes objects, not ids)."""
        return self._networks.get(ref, lambda r: self._network_lookup.find(r, self._driver))
