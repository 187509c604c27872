"""What LibcloudBackend needs from one libcloud driver, declared per cloud (one contract, many
drivers, as libcloud itself is shaped).

A :class:`DriverProfile` subclass states, for the libcloud NodeDriver it serves: how the driver
is built from the CE's options and credentials, how a VMSpec becomes ``create_node`` arguments
(user data, owner tags, networks, zone), how a listing is narrowed to our VMs, how a node's state
and an error body are read, and where the quota comes from. LibcloudBackend only calls these;
it never asks which cloud it talks to, and never inspects driver signatures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize
from libcloud.compute.types import NodeState

from JenniferDIRAC.Resources.Cloud.errors import CloudError, ConfigurationError
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, Quota, VMSpec, VMState

#: libcloud's generic node states, as every driver reports them.
NODE_STATES = {
    NodeState.PENDING: VMState.BUILD,
    NodeState.STARTING: VMState.BUILD,
    NodeState.RUNNING: VMState.ACTIVE,
    NodeState.REBOOTING: VMState.ACTIVE,
    NodeState.RECONFIGURING: VMState.ACTIVE,
    NodeState.MIGRATING: VMState.ACTIVE,
    NodeState.STOPPING: VMState.ACTIVE,
    NodeState.STOPPED: VMState.SHUTOFF,
    NodeState.SUSPENDED: VMState.SHUTOFF,
    NodeState.PAUSED: VMState.SHUTOFF,
    NodeState.ERROR: VMState.ERROR,
}

_ERROR_CODE = re.compile(r"^\s*(?:\[)?(?P<code>[A-Za-z][A-Za-z0-9.]*)(?:\])?:?\s")


def error_code(message: str) -> str:
    """The cloud's error code at the head of a libcloud error message (EC2: ``Code: text``,
    Azure: ``[Code] text``), "" if there is none."""
    match = _ERROR_CODE.match(message or "")
    return match.group("code") if match else ""


class DriverProfile:
    """One libcloud driver as LibcloudBackend uses it. Subclasses declare the class attributes
    and override what their driver does differently."""

    #: libcloud Provider names (``CloudType``) this profile serves
    provider_names: ClassVar[tuple[str, ...]] = ()
    #: the libcloud NodeDriver class (a dotted CloudType naming a subclass of it is served too)
    node_driver: ClassVar[type[NodeDriver]]
    #: largest raw user data the cloud accepts
    max_user_data_bytes: ClassVar[int] = 65535
    #: Driver_* options consumed here rather than passed to the driver's constructor
    create_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, driver_cls: type[NodeDriver], key: str, secret: str,
                 options: Mapping[str, Any], auth: Mapping[str, str]) -> None:
        self.driver_cls = driver_cls
        self.key = key
        self.secret = secret
        self.options = {k: v for k, v in options.items() if k in self.create_options}
        self.constructor_options = {k: v for k, v in options.items() if k not in self.create_options}
        self.auth = auth

    # --- building --------------------------------------------------------------------------
    def new_driver(self) -> NodeDriver:
        """A fresh driver (own connection): each concurrent call gets its own."""
        try:
            return self.driver_cls(self.key, secret=self.secret, **self.constructor_options)
        except TypeError as exc:
            raise ConfigurationError("Driver_*", f"driver {self.driver_cls.__name__}: {exc}") from None

    def secrets(self) -> list[str]:
        return [s for s in (self.secret, self.key) if s]

    # --- creating --------------------------------------------------------------------------
    def image_object(self, driver: NodeDriver, image_id: str) -> NodeImage:
        """The libcloud image to pass to create_node for a resolved image id."""
        return NodeImage(id=image_id, name=None, driver=driver)

    def create_arguments(self, driver: NodeDriver, spec: VMSpec, image: NodeImage, size: NodeSize,
                         networks: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def create_failed(self, driver: NodeDriver, kwargs: dict[str, Any]) -> None:
        """create_node raised: release what create_arguments made for it (Azure: the NIC)."""

    # --- listing ---------------------------------------------------------------------------
    def list_nodes(self, driver: NodeDriver, owner: OwnerTags | None, name: str | None = None) -> list[Node]:
        """Live nodes, narrowed server-side to `owner` / `name` where the API can."""
        return [n for n in driver.list_nodes() if n.state != NodeState.TERMINATED]

    def list_project_nodes(self, driver: NodeDriver) -> list[Node]:
        """Every live node this account sees where the CE runs, whoever started it:
        InstallationQuotaWeights tells the installations apart by their tags."""
        return self.list_nodes(driver, None)

    def project_vm(self, driver: NodeDriver, node: Node) -> VM:
        """A node of list_project_nodes as a VM: its owner tags and whether it is ending are
        what is counted, so a profile whose node_vm calls the cloud per node may read less."""
        return self.node_vm(driver, node)

    def node_state(self, driver: NodeDriver, node: Node) -> VMState:
        return NODE_STATES.get(node.state, VMState.UNKNOWN)

    def node_metadata(self, node: Node) -> dict[str, str]:
        extra = node.extra or {}
        for key in ("tags", "metadata"):
            value = extra.get(key)
            if isinstance(value, dict) and value:
                return {str(k): str(v) for k, v in value.items() if k is not None and v is not None}
        return {}

    def node_vm(self, driver: NodeDriver, node: Node) -> VM:
        """The VM fields the profile knows beyond libcloud's generic ones (flavor, image, fault)."""
        extra = node.extra or {}
        state = self.node_state(driver, node)
        fault = ""
        if state is VMState.ERROR:
            reason = extra.get("fault") or extra.get("reason") or ""
            fault = str(reason.get("message", reason) if isinstance(reason, dict) else reason)
        size = extra.get("flavorId") or node.size or ""
        image = extra.get("imageId") or node.image or ""
        return VM(id=str(node.id), name=node.name or "", state=state, metadata=self.node_metadata(node),
                  fault=fault, flavor_id=str(getattr(size, "id", size) or ""),
                  image_id=str(getattr(image, "id", image) or ""))

    # --- deleting --------------------------------------------------------------------------
    def destroy(self, driver: NodeDriver, vm_id: str) -> None:
        driver.destroy_node(Node(id=vm_id, name=None, state=None, public_ips=[], private_ips=[], driver=driver))

    def alive_ids(self, driver: NodeDriver, vm_ids: list[str]) -> set[str]:
        """Which of `vm_ids` still exist (after deletes the driver could not confirm)."""
        return {str(n.id) for n in self.list_nodes(driver, None)} & set(vm_ids)

    def console_output(self, driver: NodeDriver, vm_id: str) -> str:
        return ""

    # --- references ------------------------------------------------------------------------
    def find_image(self, driver: NodeDriver, image_id: str | None, name: str | None) -> list[NodeImage]:
        if name is None:
            return [driver.get_image(image_id)]
        return [i for i in driver.list_images() if i.name == name]

    def list_sizes(self, driver: NodeDriver) -> list[NodeSize]:
        return list(driver.list_sizes())

    def find_networks(self, driver: NodeDriver) -> list[Any]:
        raise CloudError(f"{self.driver_cls.__name__}: Instance_Networks is not supported on this cloud")

    def network_name(self, network: Any) -> str:
        return getattr(network, "name", "") or ""

    # --- quota and errors ------------------------------------------------------------------
    def quota(self, driver: NodeDriver) -> Quota | None:
        """The cloud's own limits and usage, or None if it has no quota API."""
        return None

    def classify(self, exc: Exception, message: str, status: int | None) -> type[CloudError] | None:
        """The error type the cloud's answer means, None to let the generic rules decide."""
        return None

    #: error codes saying a resolved id no longer exists -> "image", "flavor" or "network"
    stale_codes: ClassVar[dict[str, str]] = {}

    def stale_reference(self, message: str) -> str | None:
        """Which resolved reference the cloud's answer says is gone (it must be resolved again)."""
        return self.stale_codes.get(error_code(message))
