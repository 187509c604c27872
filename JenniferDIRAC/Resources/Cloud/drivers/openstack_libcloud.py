"""OpenStack through libcloud's OpenStack NodeDriver (``CloudType`` = the dotted path of
``libcloud.compute.drivers.openstack.OpenStack_2_NodeDriver`` or a subclass of it).
``CloudType = OPENSTACK`` itself goes to openstacksdk (OpenStackBackend); this path keeps a
DIRAC configuration that names libcloud's driver class working.

User data goes as Nova ``user_data``, owner tags as server metadata, networks by id. The quota
is Nova's absolute limits (``GET /limits``, limits and usage in one call).
"""

from __future__ import annotations

from typing import Any

from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize
from libcloud.compute.drivers.openstack import OpenStackNodeDriver

from JenniferDIRAC.Resources.Cloud.drivers.base import DriverProfile
from JenniferDIRAC.Resources.Cloud.errors import CloudError, QuotaExceeded
from JenniferDIRAC.Resources.Cloud.model import Quota, VMSpec

NOVA_MAX_USER_DATA_BYTES = 65535


def _limit(absolute: dict[str, Any], key: str) -> int | None:
    value = absolute.get(key)
    return int(value) if isinstance(value, (int, float)) else None


class OpenStackLibcloudProfile(DriverProfile):
    provider_names = ()  # OPENSTACK is openstacksdk's; reached by the driver's class path only
    node_driver = OpenStackNodeDriver
    max_user_data_bytes = NOVA_MAX_USER_DATA_BYTES

    def create_arguments(self, driver: NodeDriver, spec: VMSpec, image: NodeImage, size: NodeSize,
                         networks: list[Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "name": spec.name, "image": image, "size": size,
            "ex_userdata": spec.user_data,  # bytes: libcloud base64-encodes them as they are
            "ex_metadata": dict(spec.metadata),
        }
        if networks:
            kwargs["networks"] = networks
        if spec.key_name:
            kwargs["ex_keyname"] = spec.key_name
        if spec.security_groups:
            kwargs["ex_security_groups"] = [
                g for g in driver.ex_list_security_groups() if g.name in spec.security_groups
            ]
        if spec.availability_zone:
            kwargs["ex_availability_zone"] = spec.availability_zone
        if spec.config_drive:
            kwargs["ex_config_drive"] = True
        return kwargs

    def find_networks(self, driver: NodeDriver) -> list[Any]:
        return list(driver.ex_list_networks())

    def console_output(self, driver: NodeDriver, vm_id: str) -> str:
        node = Node(id=vm_id, name=None, state=None, public_ips=[], private_ips=[], driver=driver)
        result = driver.ex_get_console_output(node)
        return (result.get("output") if isinstance(result, dict) else str(result or "")) or ""

    def quota(self, driver: NodeDriver) -> Quota:
        body = driver.connection.request("/limits").object
        absolute = (body or {}).get("limits", {}).get("absolute", {})
        return Quota(
            max_instances=_limit(absolute, "maxTotalInstances"),
            used_instances=_limit(absolute, "totalInstancesUsed") or 0,
            max_cores=_limit(absolute, "maxTotalCores"),
            used_cores=_limit(absolute, "totalCoresUsed") or 0,
            max_ram_mb=_limit(absolute, "maxTotalRAMSize"),
            used_ram_mb=_limit(absolute, "totalRAMUsed") or 0,
        )

    def classify(self, exc: Exception, message: str, status: int | None) -> type[CloudError] | None:
        # Nova's body has no error code: its quota refusal is a 403 (413 before Pike) whose
        # message starts "Quota exceeded" (nova.exception.OverQuota); other 403s are policy
        if status in (403, 413) and "Quota exceeded" in message:
            return QuotaExceeded
        return None
