"""Amazon EC2 (libcloud's EC2NodeDriver), and clouds speaking its API.

User data goes as ``UserData`` (at most 16 KiB raw), owner tags as EC2 tags, the VM name as
client token (a repeated create of the same VM returns the same instance). Listings are
filtered server-side on our tags. Failures are typed from the EC2 error code of the body
(``<Response><Errors><Error><Code>``), see ``ERROR_KINDS``.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar
from xml.etree import ElementTree

from libcloud.common.types import InvalidCredsError, MalformedResponseError
from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver
from libcloud.compute.types import NodeState

from JenniferDIRAC.Resources.Cloud.drivers.base import DriverProfile, error_code
from JenniferDIRAC.Resources.Cloud.errors import (
    CapacityExhausted,
    CloudAuthError,
    CloudError,
    CloudUnreachable,
    ConfigurationError,
    NotFound,
    QuotaExceeded,
    RequestRejected,
)
from JenniferDIRAC.Resources.Cloud.model import TAG_CE, TAG_INSTALLATION, VM, OwnerTags, VMSpec, VMState

EC2_MAX_USER_DATA_BYTES = 16 * 1024

#: EC2 error codes (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)
#: and what they mean here. A code ending in "." stands for every code with that prefix.
ERROR_KINDS: dict[str, type[CloudError]] = {
    "InstanceLimitExceeded": QuotaExceeded,
    "VcpuLimitExceeded": QuotaExceeded,
    "MaxSpotInstanceCountExceeded": QuotaExceeded,
    "InsufficientFreeAddressesInSubnet": QuotaExceeded,
    "InsufficientInstanceCapacity": CapacityExhausted,
    "InsufficientCapacity": CapacityExhausted,
    "InsufficientHostCapacity": CapacityExhausted,
    "InsufficientAddressCapacity": CapacityExhausted,
    "InvalidInstanceID.": NotFound,
    "InvalidAMIID.": RequestRejected,
    "InvalidInstanceType": RequestRejected,
    "InvalidInstanceType.": RequestRejected,
    "InvalidParameterValue": RequestRejected,
    "InvalidParameterCombination": RequestRejected,
    "InvalidParameter": RequestRejected,
    "InvalidSubnetID.": RequestRejected,
    "InvalidGroup.": RequestRejected,
    "InvalidKeyPair.": RequestRejected,
    "InvalidUserData.": RequestRejected,
    "Unsupported": RequestRejected,
    "UnsupportedOperation": RequestRejected,
    "RequestLimitExceeded": CloudUnreachable,
    "Throttling": CloudUnreachable,
    "InternalError": CloudUnreachable,
    "ServiceUnavailable": CloudUnreachable,
    "Unavailable": CloudUnreachable,
    "AuthFailure": CloudAuthError,
    "InvalidClientTokenId": CloudAuthError,
    "SignatureDoesNotMatch": CloudAuthError,
    "OptInRequired": CloudAuthError,
    "UnauthorizedOperation": CloudAuthError,
}


def ec2_error_kind(code: str) -> type[CloudError] | None:
    if code in ERROR_KINDS:
        return ERROR_KINDS[code]
    for prefix, kind in ERROR_KINDS.items():
        if prefix.endswith(".") and code.startswith(prefix):
            return kind
    return None


class _ErrorBody:
    """Reads an EC2 error body as ``Code: Message`` lines, whatever its XML namespace and extra
    elements: libcloud reads only bare ``Errors/Error`` with exactly Code and Message (as AWS
    sends them); EC2-compatible servers, moto among them, add a namespace or a ``Type``, and the
    error code would be lost."""

    def parse_error(self):
        try:
            root = ElementTree.fromstring(self.body or "")
        except ElementTree.ParseError:
            if int(self.status) >= 500:  # a proxy's or load balancer's page: the cloud is away
                return f"HTTP {self.status} without an EC2 error body"
            raise MalformedResponseError("EC2 error without an XML body", body=self.body) from None
        errors = [
            (_child_text(error, "Code"), _child_text(error, "Message"))
            for error in root.iter() if _local(error.tag) == "Error"
        ]
        text = "\n".join(f"{code}: {message}" for code, message in errors) or f"HTTP {self.status}"
        if errors and ec2_error_kind(errors[0][0]) is CloudAuthError:
            raise InvalidCredsError(text)
        return text


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child_text(element, name: str) -> str:
    return next((child.text or "" for child in element if _local(child.tag) == name), "")


@functools.cache
def _reading_any_namespace(driver_cls: type[NodeDriver]) -> type[NodeDriver]:
    connection = driver_cls.connectionCls
    response = type("Response", (_ErrorBody, connection.responseCls), {})
    connection = type(connection.__name__, (connection,), {"responseCls": response})
    return type(driver_cls.__name__, (driver_cls,), {"connectionCls": connection})


class EC2Profile(DriverProfile):
    provider_names = ("EC2",)
    node_driver = EC2NodeDriver
    max_user_data_bytes = EC2_MAX_USER_DATA_BYTES

    def __init__(self, driver_cls, key, secret, options, auth) -> None:
        super().__init__(_reading_any_namespace(driver_cls), key, secret, options, auth)

    stale_codes: ClassVar[dict[str, str]] = {"InvalidAMIID.NotFound": "image", "InvalidAMIID.Unavailable": "image",
                   "InvalidSubnetID.NotFound": "network"}

    def create_arguments(self, driver: NodeDriver, spec: VMSpec, image: NodeImage, size: NodeSize,
                         networks: list[Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "name": spec.name, "image": image, "size": size,
            "ex_userdata": spec.user_data,
            "ex_metadata": dict(spec.metadata),  # EC2 tags (libcloud adds Name)
            "ex_clienttoken": spec.name,
        }
        if spec.key_name:
            kwargs["ex_keyname"] = spec.key_name
        if spec.security_groups:
            kwargs["ex_security_groups"] = list(spec.security_groups)
        if networks:
            if len(networks) != 1:
                raise ConfigurationError("Instance_Networks", "EC2 takes exactly one subnet")
            kwargs["ex_subnet"] = networks[0]
        if spec.availability_zone:
            kwargs["location"] = self._zone(driver, spec.availability_zone)
        return kwargs

    @staticmethod
    def _zone(driver: NodeDriver, zone: str):
        for location in driver.list_locations():
            if zone in (location.name, getattr(getattr(location, "availability_zone", None), "name", None)):
                return location
        raise NotFound(f"no availability zone {zone!r} (Instance_AvailabilityZone)")

    def list_nodes(self, driver: NodeDriver, owner: OwnerTags | None, name: str | None = None) -> list[Node]:
        filters: dict[str, Any] = {}
        if owner is not None:
            filters[f"tag:{TAG_CE}"] = owner.ce
            filters[f"tag:{TAG_INSTALLATION}"] = owner.installation
        if name is not None:
            filters["tag:Name"] = name
        nodes = driver.list_nodes(ex_filters=filters or None)
        return [n for n in nodes if n.state != NodeState.TERMINATED]

    def list_project_nodes(self, driver: NodeDriver) -> list[Node]:
        # every instance of the account in the region carrying an installation tag, any value
        nodes = driver.list_nodes(ex_filters={"tag-key": TAG_INSTALLATION})
        return [n for n in nodes if n.state != NodeState.TERMINATED]

    def node_state(self, driver: NodeDriver, node: Node) -> VMState:
        status = (node.extra or {}).get("status")
        if status == "shutting-down":
            return VMState.DELETING
        if status == "stopped":
            return VMState.SHUTOFF
        return super().node_state(driver, node)

    def node_vm(self, driver: NodeDriver, node: Node) -> VM:
        vm = super().node_vm(driver, node)
        extra = node.extra or {}
        vm.flavor_id = str(extra.get("instance_type") or vm.flavor_id)
        vm.image_id = str(extra.get("image_id") or vm.image_id)
        if vm.state is VMState.ERROR:
            vm.fault = str(extra.get("state_reason") or vm.fault)
        return vm

    def alive_ids(self, driver: NodeDriver, vm_ids: list[str]) -> set[str]:
        nodes = driver.list_nodes(ex_filters={"instance-id": list(vm_ids)})
        return {str(n.id) for n in nodes if n.state != NodeState.TERMINATED}

    def console_output(self, driver: NodeDriver, vm_id: str) -> str:
        node = Node(id=vm_id, name=None, state=None, public_ips=[], private_ips=[], driver=driver)
        result = driver.ex_get_console_output(node)
        return (result.get("output") if isinstance(result, dict) else str(result or "")) or ""

    def find_image(self, driver: NodeDriver, image_id: str | None, name: str | None) -> list[NodeImage]:
        if name is None:
            return list(driver.list_images(ex_image_ids=[image_id]))
        return list(driver.list_images(ex_filters={"name": name}))

    def find_networks(self, driver: NodeDriver) -> list[Any]:
        return list(driver.ex_list_subnets())

    def network_name(self, network: Any) -> str:
        return (network.extra or {}).get("tags", {}).get("Name") or network.name or ""

    def classify(self, exc: Exception, message: str, status: int | None) -> type[CloudError] | None:
        return ec2_error_kind(error_code(message))
