"""The one model of a cloud VM that every backend maps to, and of what we need from a cloud.

Backends (openstacksdk, libcloud) translate their own objects into these types; nothing above
the backends sees a backend-specific object or dict.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from JenniferDIRAC.Resources.Cloud.errors import FailureKind

#: Metadata keys that mark a VM as ours. A VM is owned by one DIRAC installation and one CE;
#: names are never used to decide ownership (other installations share the same projects).
TAG_PREFIX = "jdirac-"
TAG_INSTALLATION = TAG_PREFIX + "installation"
TAG_CE = TAG_PREFIX + "ce"
TAG_VO = TAG_PREFIX + "vo"
TAG_STAMP = TAG_PREFIX + "stamp"
TAG_PROFILE = TAG_PREFIX + "profile"
TAG_SITE = TAG_PREFIX + "site"
TAG_QUEUE = TAG_PREFIX + "queue"


class VMState(str, Enum):
    """Cloud-side state of a VM, normalised across clouds."""

    BUILD = "BUILD"  # being created / booting: the pilot is not yet running
    ACTIVE = "ACTIVE"  # running
    SHUTOFF = "SHUTOFF"  # powered off (the pilot ended and the VM powered itself off)
    ERROR = "ERROR"  # the cloud failed it; see VM.fault
    DELETING = "DELETING"  # delete requested, still listed
    UNKNOWN = "UNKNOWN"  # a state we cannot map

    @property
    def is_terminal(self) -> bool:
        return self in (VMState.SHUTOFF, VMState.ERROR)


@dataclass(frozen=True)
class OwnerTags:
    """Who a VM belongs to. Written as VM metadata at creation, read back from every listing."""

    installation: str
    ce: str
    vo: str = ""
    stamp: str = ""
    profile: str = ""
    site: str = ""
    #: the CE queue the VM was submitted for ("" for VMs created before v0.2.0: the lifecycle
    #: then applies the CE-level options)
    queue: str = ""

    def to_metadata(self) -> dict[str, str]:
        metadata = {TAG_INSTALLATION: self.installation, TAG_CE: self.ce}
        for key, value in (
            (TAG_VO, self.vo),
            (TAG_STAMP, self.stamp),
            (TAG_PROFILE, self.profile),
            (TAG_SITE, self.site),
            (TAG_QUEUE, self.queue),
        ):
            if value:
                metadata[key] = value
        return metadata

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None) -> OwnerTags | None:
        """The owner recorded in a VM's metadata, or None for a VM that is not JenniferDIRAC's."""
        metadata = metadata or {}
        installation = metadata.get(TAG_INSTALLATION)
        ce = metadata.get(TAG_CE)
        if not installation or not ce:
            return None
        return cls(
            installation=installation,
            ce=ce,
            vo=metadata.get(TAG_VO, ""),
            stamp=metadata.get(TAG_STAMP, ""),
            profile=metadata.get(TAG_PROFILE, ""),
            site=metadata.get(TAG_SITE, ""),
            queue=metadata.get(TAG_QUEUE, ""),
        )

    def owns(self, other: OwnerTags | None) -> bool:
        """True if `other` (read from a VM) belongs to the same installation and CE as self."""
        return other is not None and other.installation == self.installation and other.ce == self.ce


#: The owner tags VMs share: all but the stamp, which is one VM's own.
_SHARED_OWNER_KEYS = (TAG_INSTALLATION, TAG_CE, TAG_VO, TAG_PROFILE, TAG_SITE, TAG_QUEUE)


# One entry per installation, CE, VO, profile, site and queue: the configuration bounds it, not
# the VMs a process has seen (a key with the stamp took a new entry per VM created, for ever).
@functools.lru_cache(maxsize=1024)
def _shared_owner_of(tags: tuple[str, ...]) -> OwnerTags | None:
    return OwnerTags.from_metadata(dict(zip(_SHARED_OWNER_KEYS, tags)))


@dataclass
class VM:
    """A VM as listed by a cloud."""

    id: str
    name: str
    state: VMState
    created: datetime | None = None  # timezone-aware UTC
    updated: datetime | None = None
    launched: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    fault: str = ""  # the cloud's reason for ERROR, if any
    #: what the fault means, as the backend read it from the cloud's fault (None: no fault, or
    #: the backend cannot tell; the policy then treats it as a cloud fault)
    fault_kind: FailureKind | None = None
    flavor_id: str = ""
    image_id: str = ""
    #: (a copy of the metadata, owner) of the last `owner` read; it lives and goes with the VM
    _owner_read: tuple = field(default=(), init=False, repr=False, compare=False)

    @property
    def owner(self) -> OwnerTags | None:
        # read for every VM many times a cycle (5,000 VMs: 34,000 reads, 0.5 s CPU): built once
        # per VM from one shared OwnerTags per set of tags; a change of the metadata (one dict
        # comparison of the copy it was built from) builds it again
        metadata = self.metadata or {}
        last = self._owner_read
        if last and last[0] == metadata:
            return last[1]
        tags = tuple(metadata.get(tag, "") for tag in _SHARED_OWNER_KEYS)
        stamp = metadata.get(TAG_STAMP, "")
        owner = _shared_owner_of(tags)
        if owner is not None and stamp:
            owner = dataclasses.replace(owner, stamp=stamp)
        self._owner_read = (dict(metadata), owner)
        return owner

    @property
    def stamp(self) -> str:
        return self.metadata.get(TAG_STAMP, "")


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram_mb: int


@dataclass(frozen=True)
class Quota:
    """Absolute limits and usage of a project. None or a negative limit means unlimited."""

    max_instances: int | None = None
    used_instances: int = 0
    max_cores: int | None = None
    used_cores: int = 0
    max_ram_mb: int | None = None
    used_ram_mb: int = 0

    def headroom(self, flavor: Flavor) -> float:
        """How many more VMs of `flavor` fit; math.inf when nothing limits it."""
        room = math.inf
        for limit, used, cost in (
            (self.max_instances, self.used_instances, 1),
            (self.max_cores, self.used_cores, flavor.vcpus),
            (self.max_ram_mb, self.used_ram_mb, flavor.ram_mb),
        ):
            if limit is None or limit < 0 or cost <= 0:
                continue
            room = min(room, max(0, (limit - used) // cost))
        return room


@dataclass
class VMSpec:
    """Everything needed to create one VM. Ids are already resolved (never `name:` references)."""

    name: str
    image_id: str
    flavor_id: str
    user_data: bytes
    metadata: dict[str, str]
    network_ids: list[str] = field(default_factory=list)
    key_name: str | None = None
    security_groups: list[str] = field(default_factory=list)
    availability_zone: str | None = None
    config_drive: bool = False
