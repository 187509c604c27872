"""Microsoft Azure Resource Manager (libcloud's AzureNodeDriver, ``CloudType = AZURE_ARM``).

Credentials: a service principal in the CloudAuth file, ``key`` = client (application) id,
``secret`` = client secret, plus ``tenant_id`` and ``subscription_id``::

    [azure.example]
    key = 00000000-0000-0000-0000-000000000000
    secret = <client secret>
    tenant_id = 11111111-1111-1111-1111-111111111111
    subscription_id = 22222222-2222-2222-2222-222222222222

CE options: ``Region`` (the location, e.g. ``westeurope``, required), ``Driver_ex_resource_group``
(required: VMs, NICs and disks live there), ``Instance_Networks`` (one virtual network: id or
``name:<vnet>``), ``Driver_ex_subnet`` (default ``default``), ``Instance_Image`` (a marketplace
URN ``Publisher:Offer:Sku:Version`` or an image resource id ``/subscriptions/...``),
``Instance_Flavor`` (a VM size, e.g. ``Standard_D2s_v3``), ``Instance_SSHKey`` (an OpenSSH
public key; without one a throwaway key is generated, so nobody can log in),
``Driver_ex_user_name`` (admin user, default ``azureuser``), ``Driver_ex_storage_account_type``
(managed OS disk type, default ``Standard_LRS``). ``Driver_cloud_environment`` names a sovereign
cloud (``AzureChinaCloud``, ...); ``Driver_management_url`` / ``Driver_login_url`` override the
Resource Manager and Azure AD endpoints.

Each VM gets its own NIC (``<vm name>-nic``) and a managed OS disk, both created with
``deleteOption = Delete`` so one DELETE of the VM removes all three. The user data is the VM's
``customData`` (base64; cloud-init reads it). Owner tags are Azure tags; listings are of the
resource group, narrowed to our tags, then one InstanceView per owned VM gives its power state.
One Azure AD token serves every connection of the CE until shortly before it expires.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from libcloud.common.azure_arm import (
    AzureAuthJsonResponse,
    AzureResourceManagementConnection,
    publicEnvironments,
)
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.base import Node, NodeAuthSSHKey, NodeDriver, NodeImage, NodeSize
from libcloud.compute.drivers.azure_arm import (
    AzureComputeGalleryImage,
    AzureImage,
    AzureNodeDriver,
    AzureSubnet,
)
from libcloud.http import LibcloudConnection

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

AZURE_MAX_USER_DATA_BYTES = 65535  # customData: at most 64 KiB before base64
VM_API_VERSION = "2021-11-01"

#: Azure Resource Manager error codes ("[Code] message") and what they mean here.
ERROR_KINDS: dict[str, type[CloudError]] = {
    "QuotaExceeded": QuotaExceeded,
    # Azure's quota refusal: OperationNotAllowed, "... results in exceeding approved <family>
    # Cores quota ..."; the same code without a quota in the message is a plain refusal (classify)
    "OperationNotAllowed": QuotaExceeded,
    "SkuNotAvailable": CapacityExhausted,
    "AllocationFailed": CapacityExhausted,
    "ZonalAllocationFailed": CapacityExhausted,
    "OverconstrainedAllocationRequest": CapacityExhausted,
    "ResourceNotFound": NotFound,
    "NotFound": NotFound,
    "ResourceGroupNotFound": RequestRejected,
    "InvalidParameter": RequestRejected,
    "ImageNotFound": RequestRejected,
    "PlatformImageNotFound": RequestRejected,
    "InvalidTemplate": RequestRejected,
    "InvalidResourceReference": RequestRejected,
    "AuthenticationFailed": CloudAuthError,
    "InvalidAuthenticationToken": CloudAuthError,
    "ExpiredAuthenticationToken": CloudAuthError,
    "AuthorizationFailed": CloudAuthError,
    "TooManyRequests": CloudUnreachable,
    "InternalServerError": CloudUnreachable,
}

_REQUIRED_AUTH = ("tenant_id", "subscription_id")


class _TokenCache:
    """One Azure AD access token (client credentials grant) shared by the CE's connections."""

    def __init__(self, login_url: str, tenant_id: str, client_id: str, client_secret: str,
                 resource: str, margin: float = 300.0) -> None:
        parts = urlsplit(login_url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.secure else 80)
        self.path = f"{parts.path.rstrip('/')}/{tenant_id}/oauth2/token"
        self._form = {"grant_type": "client_credentials", "client_id": client_id,
                      "client_secret": client_secret, "resource": resource}
        self._margin = margin
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0

    def token(self, timeout: float | None) -> tuple[str, float]:
        """(access token, epoch seconds when it expires); renewed `margin` seconds before, as
        libcloud's connection does."""
        with self._lock:
            if self._token and time.time() + self._margin < self._expires_at:
                return self._token, self._expires_at
            conn = LibcloudConnection(self.host, self.port, secure=self.secure, timeout=timeout)
            conn.request("POST", self.path, urlencode(self._form),
                         {"Content-type": "application/x-www-form-urlencoded"})
            try:
                body = AzureAuthJsonResponse(conn.getresponse(), conn).object
            except BaseHTTPError as exc:
                if exc.code is not None and int(exc.code) >= 500:
                    raise
                raise InvalidCredsError(f"Azure AD refused the service principal: {exc.message}") from None
            # expires_in, not expires_on: a relative lifetime is immune to clock skew
            lifetime = float(body.get("expires_in") or 3600)
            self._token = body["access_token"]
            self._expires_at = time.time() + lifetime
            return self._token, self._expires_at


class _Connection(AzureResourceManagementConnection):
    """libcloud's ARM connection, with the endpoints' scheme and port honoured (libcloud keeps
    only their host names), a shared token, and JSON encoding that takes libcloud's base64
    customData (bytes)."""

    def __init__(self, key, secret, secure=True, *, token_cache: _TokenCache, management_url: str, **kwargs):
        super().__init__(key, secret, **kwargs)
        self._token_cache = token_cache
        self.host, self.port, self.secure, self.request_path = self._tuple_from_url(management_url)
        self.request_path = self.request_path.rstrip("/")

    def get_token_from_credentials(self):
        self.access_token, self.expires_on = self._token_cache.token(self.timeout)

    def encode_data(self, data):
        if isinstance(data, dict) and data.get("type") == "Microsoft.Compute/virtualMachines":
            # the NIC made for this VM goes with it (libcloud cannot ask for that)
            for nic in data.get("properties", {}).get("networkProfile", {}).get("networkInterfaces", []):
                nic.setdefault("properties", {})["deleteOption"] = "Delete"
        return json.dumps(data, default=lambda o: o.decode("ascii") if isinstance(o, bytes) else str(o))


class _Driver(AzureNodeDriver):
    connectionCls = _Connection

    def __init__(self, *args, token_cache: _TokenCache, management_url: str, **kwargs):
        self._jdirac_connection = {"token_cache": token_cache, "management_url": management_url}
        super().__init__(*args, **kwargs)

    def _ex_connection_class_kwargs(self):
        return {**super()._ex_connection_class_kwargs(), **self._jdirac_connection}


def _throwaway_ssh_key() -> str:
    """An OpenSSH public key whose private half is discarded: the VM takes no logins."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode("ascii")


def _power_state(view: Mapping[str, Any]) -> tuple[VMState, str]:
    """(state, fault) from a VM's InstanceView statuses."""
    provisioning, power, fault = "", "", ""
    for status in view.get("statuses", []):
        code = str(status.get("code", ""))
        if code.startswith("ProvisioningState/"):
            provisioning = code.split("/", 1)[1].lower()
            if provisioning.startswith("failed"):
                fault = str(status.get("message") or status.get("displayStatus") or code)
        elif code.startswith("PowerState/"):
            power = code.split("/", 1)[1].lower()
    if provisioning.startswith("failed"):
        return VMState.ERROR, fault
    if provisioning == "deleting":
        return VMState.DELETING, ""
    if power in ("stopped", "deallocated", "deallocating"):
        return VMState.SHUTOFF, ""
    if power in ("running", "stopping"):
        return VMState.ACTIVE, ""
    return VMState.BUILD, ""


#: a VM's provisioningState in a listing (lower case) -> its state; any other (Succeeded,
#: Updating, Migrating) is a VM that exists and runs
_LISTED_STATES = {"creating": VMState.BUILD, "deleting": VMState.DELETING, "failed": VMState.ERROR}


class AzureProfile(DriverProfile):
    provider_names = ("AZURE_ARM",)
    node_driver = AzureNodeDriver
    max_user_data_bytes = AZURE_MAX_USER_DATA_BYTES
    create_options = ("ex_resource_group", "ex_subnet", "ex_user_name", "ex_storage_account_type",
                      "cloud_environment", "management_url", "login_url")

    def __init__(self, driver_cls, key, secret, options, auth) -> None:
        super().__init__(driver_cls, key, secret, options, auth)
        for option in ("host", "port", "secure"):
            if option in self.constructor_options:  # libcloud's Azure connection ignores them
                raise ConfigurationError(f"Driver_{option}", "is not used by AZURE_ARM; set Driver_management_url "
                                                             "and Driver_login_url instead")
        missing = [k for k in _REQUIRED_AUTH if not auth.get(k)]
        if missing or not key or not secret:
            needs = ", ".join(missing + [k for k, v in (("key", key), ("secret", secret)) if not v])
            raise ConfigurationError("CloudAuth", f"AZURE_ARM needs a service principal: {needs} missing "
                                                  "(key = client id, secret = client secret)")
        self.resource_group = str(self.options.get("ex_resource_group") or "")
        if not self.resource_group:
            raise ConfigurationError("Driver_ex_resource_group", "is required for AZURE_ARM")
        if not self.constructor_options.get("region"):
            raise ConfigurationError("Region", "is required for AZURE_ARM (the location, e.g. westeurope)")
        name = str(self.options.get("cloud_environment") or "default")
        if name not in publicEnvironments:
            raise ConfigurationError("Driver_cloud_environment",
                                     f"{name!r} is not one of {', '.join(publicEnvironments)}")
        environment = publicEnvironments[name]
        self.management_url = str(self.options.get("management_url") or environment["resourceManagerEndpointUrl"])
        self.login_url = str(self.options.get("login_url") or environment["activeDirectoryEndpointUrl"])
        for option, url in (("Driver_management_url", self.management_url), ("Driver_login_url", self.login_url)):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ConfigurationError(option, f"{url!r} is not an http(s) URL")
        self.environment = {**environment, "resourceManagerEndpointUrl": self.management_url,
                            "activeDirectoryEndpointUrl": self.login_url}
        self.tenant_id, self.subscription_id = auth["tenant_id"], auth["subscription_id"]
        self.subnet = str(self.options.get("ex_subnet") or "default")
        self.user_name = str(self.options.get("ex_user_name") or "azureuser")
        self.disk_type = str(self.options.get("ex_storage_account_type") or "Standard_LRS")
        self.tokens = _TokenCache(self.login_url, self.tenant_id, key, secret,
                                  environment["activeDirectoryResourceId"])

    def new_driver(self) -> NodeDriver:
        try:
            return _Driver(self.tenant_id, self.subscription_id, self.key, self.secret,
                           cloud_environment=self.environment, token_cache=self.tokens,
                           management_url=self.management_url, **self.constructor_options)
        except TypeError as exc:
            raise ConfigurationError("Driver_*", f"driver AZURE_ARM: {exc}") from None

    # --- creating --------------------------------------------------------------------------
    def image_object(self, driver: NodeDriver, image_id: str) -> NodeImage:
        if image_id.startswith("/subscriptions/"):
            # libcloud sends {"id": image.id} for this class; the id is the resource id as given
            # (a managed image or a gallery image version), not the one the class would build
            image = AzureComputeGalleryImage(self.subscription_id, self.resource_group, "", image_id, driver)
            image.id = image_id
            return image
        publisher, offer, sku, version = image_id.split(":")
        return AzureImage(version, sku, offer, publisher, driver.default_location.id, driver)

    def create_arguments(self, driver: NodeDriver, spec: VMSpec, image: NodeImage, size: NodeSize,
                         networks: list[Any]) -> dict[str, Any]:
        if len(networks) != 1:
            raise ConfigurationError("Instance_Networks", "AZURE_ARM takes exactly one virtual network")
        if spec.security_groups:
            raise ConfigurationError("Instance_SecurityGroups", "is not supported on AZURE_ARM")
        key = spec.key_name if spec.key_name and spec.key_name.startswith(("ssh-", "ecdsa-")) else None
        if spec.key_name and key is None:
            raise ConfigurationError("Instance_SSHKey", "on AZURE_ARM is an OpenSSH public key (ssh-rsa ...)")
        subnet_id = f"{networks[0].id}/subnets/{self.subnet}"
        nic = driver.ex_create_network_interface(
            f"{spec.name}-nic", AzureSubnet(subnet_id, self.subnet, {}), self.resource_group
        )
        return {
            "name": spec.name, "size": size, "image": self.image_object(driver, image.id),
            "auth": NodeAuthSSHKey(key or _throwaway_ssh_key()),
            "ex_resource_group": self.resource_group,
            "ex_user_name": self.user_name,
            "ex_nic": nic,
            "ex_tags": dict(spec.metadata),
            "ex_customdata": spec.user_data,  # libcloud base64-encodes it
            "ex_use_managed_disks": True,
            "ex_storage_account_type": self.disk_type,
            "ex_os_disk_delete": True,
        }

    def create_failed(self, driver: NodeDriver, kwargs: dict[str, Any]) -> None:
        driver.ex_destroy_nic(kwargs["ex_nic"])  # the VM was refused: its NIC must not leak

    # --- listing ---------------------------------------------------------------------------
    def list_nodes(self, driver: NodeDriver, owner: OwnerTags | None, name: str | None = None) -> list[Node]:
        nodes = driver.list_nodes(ex_resource_group=self.resource_group, ex_fetch_nic=False,
                                  ex_fetch_power_state=False)
        if owner is not None:
            nodes = [n for n in nodes
                     if (n.extra.get("tags") or {}).get(TAG_CE) == owner.ce
                     and (n.extra.get("tags") or {}).get(TAG_INSTALLATION) == owner.installation]
        if name is not None:
            nodes = [n for n in nodes if n.name == name]
        return nodes

    def node_vm(self, driver: NodeDriver, node: Node) -> VM:
        properties = (node.extra or {}).get("properties", {})
        try:
            view = driver.connection.request(f"{node.id}/InstanceView", params={"api-version": VM_API_VERSION}).object
        except BaseHTTPError:
            # not there yet (just created) or a passing failure: the VM exists, say what is known
            view = {"statuses": [{"code": f"ProvisioningState/{properties.get('provisioningState', 'creating')}"}]}
        state, fault = _power_state(view or {})
        reference = properties.get("storageProfile", {}).get("imageReference", {})
        image = reference.get("id") or ":".join(
            str(reference.get(k, "")) for k in ("publisher", "offer", "sku", "version")) if reference else ""
        return VM(id=str(node.id), name=node.name or "", state=state, metadata=self.node_metadata(node),
                  fault=fault, flavor_id=str(properties.get("hardwareProfile", {}).get("vmSize", "")),
                  image_id=image)

    def project_vm(self, driver: NodeDriver, node: Node) -> VM:
        # the listing's provisioningState says enough to count a VM: no InstanceView for each
        # VM of every installation in the resource group
        properties = (node.extra or {}).get("properties", {})
        state = _LISTED_STATES.get(str(properties.get("provisioningState") or "").lower(), VMState.ACTIVE)
        return VM(id=str(node.id), name=node.name or "", state=state, metadata=self.node_metadata(node),
                  flavor_id=str(properties.get("hardwareProfile", {}).get("vmSize", "")))

    # --- deleting --------------------------------------------------------------------------
    def destroy(self, driver: NodeDriver, vm_id: str) -> None:
        # NIC and OS disk were created with deleteOption = Delete: one DELETE, nothing to poll
        node = Node(id=vm_id, name=None, state=None, public_ips=[], private_ips=[], driver=driver,
                    extra={"properties": {"networkProfile": {"networkInterfaces": []},
                                          "storageProfile": {"osDisk": {}}}})
        driver.destroy_node(node, ex_destroy_nic=False, ex_destroy_vhd=False, ex_destroy_os_disk=False)

    def alive_ids(self, driver: NodeDriver, vm_ids: list[str]) -> set[str]:
        return {str(n.id) for n in self.list_nodes(driver, None)} & set(vm_ids)

    # --- references ------------------------------------------------------------------------
    def find_image(self, driver: NodeDriver, image_id: str | None, name: str | None) -> list[NodeImage]:
        if name is None and image_id and (image_id.startswith("/subscriptions/") or image_id.count(":") == 3):
            return [self.image_object(driver, image_id)]
        raise ConfigurationError("Instance_Image", "on AZURE_ARM is a marketplace URN Publisher:Offer:Sku:Version "
                                                   "or an image resource id /subscriptions/...")

    def find_networks(self, driver: NodeDriver) -> list[Any]:
        return list(driver.ex_list_networks())

    # --- errors ----------------------------------------------------------------------------
    stale_codes: ClassVar[dict[str, str]] = {"ImageNotFound": "image", "PlatformImageNotFound": "image",
                   "GalleryImageNotFound": "image", "InvalidResourceReference": "network"}

    def classify(self, exc: Exception, message: str, status: int | None) -> type[CloudError] | None:
        kind = ERROR_KINDS.get(error_code(message))
        if kind is QuotaExceeded and error_code(message) == "OperationNotAllowed" and "quota" not in message.lower():
            return RequestRejected
        return kind
