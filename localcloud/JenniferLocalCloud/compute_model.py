"""Nova's records in LocalCloud: flavors, keypairs, quotas, faults and servers (with Nova's
vm_state and power_state of each status), the limits of their fields and the checks of a
server's metadata and user data."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import BadRequest, Forbidden

MAX_USER_DATA = 65535  # Nova's limit on the base64 text of user_data
MAX_METADATA_ITEMS = 128
MAX_LIST_LIMIT = 1000  # Nova's osapi_max_limit
DELETE_SECONDS = 1.0  # how long Nova 34 with the fake virt driver keeps a deleted server listed
UNLIMITED = -1
METADATA_LIMIT_MESSAGE = "Maximum number of metadata items exceeds {}"  # Nova's MetadataLimitExceeded

# Nova's power_state codes
NOSTATE, RUNNING, SHUTDOWN = 0, 1, 4

STATES: dict[str, tuple[str, int]] = {  # status -> (vm_state, power_state)
    "BUILD": ("building", NOSTATE),
    "ACTIVE": ("active", RUNNING),
    "SHUTOFF": ("stopped", SHUTDOWN),
    "ERROR": ("error", NOSTATE),
    "PAUSED": ("paused", 3),
    "SUSPENDED": ("suspended", SHUTDOWN),
    "DELETED": ("deleted", NOSTATE),
}

#: the ``status`` filter of a server listing: each status a client may ask for -> the vm_state
#: Nova filters on (nova.api.openstack.common's state map, the states LocalCloud has none of
#: included: a filter naming them is valid and matches nothing here)
FILTER_STATUSES: dict[str, str] = {
    "ACTIVE": "active", "REBOOT": "active", "HARD_REBOOT": "active", "PASSWORD": "active",
    "REBUILD": "active", "MIGRATING": "active", "RESIZE": "active", "REVERT_RESIZE": "active",
    "BUILD": "building", "SHUTOFF": "stopped", "VERIFY_RESIZE": "resized", "PAUSED": "paused",
    "SUSPENDED": "suspended", "RESCUE": "rescued", "ERROR": "error", "DELETED": "deleted",
    "SOFT_DELETED": "soft-delete", "SHELVED": "shelved", "SHELVED_OFFLOADED": "shelved_offloaded",
}


@dataclass
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int = 20
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass
class Keypair:
    name: str
    public_key: str
    fingerprint: str
    user_id: str
    created: float
    type: str = "ssh"


@dataclass
class Quota:
    instances: int = 10
    cores: int = 20
    ram: int = 51200
    key_pairs: int = 100
    metadata_items: int = MAX_METADATA_ITEMS


@dataclass
class Fault:
    code: int
    message: str
    created: float
    details: str = ""


@dataclass
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str
    flavor: Flavor
    created: float
    updated: float
    seq: int
    status: str = "BUILD"
    task_state: str | None = "scheduling"
    metadata: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    user_data: str | None = field(default=None, repr=False)
    key_name: str | None = None
    security_groups: list[str] = field(default_factory=lambda: ["default"])
    availability_zone: str = "nova"
    config_drive: bool = False
    fault: Fault | None = None
    launched_at: float | None = None
    terminated_at: float | None = None
    build_until: float = 0.0
    stuck: bool = False
    host_id: str = ""
    console: list[str] = field(default_factory=list, repr=False)
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    delete_at: float | None = None  # set by DELETE: the deletion completes at this instant

    @property
    def vm_state(self) -> str:
        return STATES.get(self.status, ("error", NOSTATE))[0]

    @property
    def power_state(self) -> int:
        return STATES.get(self.status, ("error", NOSTATE))[1]

    @property
    def has_host(self) -> bool:
        """Whether a compute host took the server (Nova answers 409 to host actions otherwise):
        not while it is being scheduled, not when it failed before launching."""
        if self.status == "BUILD":
            return self.task_state not in (None, "scheduling")
        return self.launched_at is not None or self.status not in ("ERROR",)


class Booter(Protocol):
    """What runs a server's user data (see ``boot``); the compute state only starts, polls,
    stops and reads it."""

    def start(self, server: Server) -> None: ...
    def exit_code(self, server: Server) -> int | None: ...
    def stop(self, server: Server) -> None: ...
    def console(self, server: Server) -> str | None: ...


@dataclass
class ListResult:
    servers: list[Server]
    limit: int  # the page size used; a full page means "there may be more"


def _check_metadata(items: Any) -> dict[str, str]:
    if not isinstance(items, dict):
        raise BadRequest("Invalid input for field/attribute metadata.")
    if len(items) > MAX_METADATA_ITEMS:
        raise Forbidden(METADATA_LIMIT_MESSAGE.format(MAX_METADATA_ITEMS))
    checked = {}
    for key, value in items.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise BadRequest("Invalid input for field/attribute metadata. Value: metadata key length")
        if not isinstance(value, str) or len(value) > 255:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {str(value)[:40]}. "
                             "Metadata values must be strings of at most 255 characters")
        checked[key] = value
    return checked


def _check_user_data(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("Invalid input for field/attribute user_data.")
    if len(value) > MAX_USER_DATA:
        raise BadRequest(f"Invalid input for field/attribute user_data. Value: ... is too long "
                         f"({len(value)} > {MAX_USER_DATA} bytes of base64)")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid input for field/attribute user_data. "
                         "Value: ... is not a base64 string") from None
    return value
