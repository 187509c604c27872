"""``Instance_Image = select: os_distro=almalinux, os_version=9, tag=belle2``: the newest active
image having every listed property value and every listed tag (sites rotate images under the
same properties, as the EGI image sync does, instead of keeping stable names)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

PREFIX = "select:"
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


@dataclass(frozen=True)
class ImageSelection:
    properties: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]

    def matches(self, properties: Mapping[str, object], tags: Iterable[str]) -> bool:
        have = set(tags)
        return all(str(properties.get(k, "")) == v for k, v in self.properties) and all(t in have for t in self.tags)


def is_selection(ref: str) -> bool:
    return ref.startswith(PREFIX)


def parse_selection(ref: str, option: str = "Instance_Image") -> ImageSelection:
    """Raises ConfigurationError naming `option` for anything but ``key=value`` items."""
    properties: dict[str, str] = {}
    tags: list[str] = []
    for item in (part.strip() for part in ref[len(PREFIX):].split(",")):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not item or not sep or not value or not _KEY.match(key):
            raise ConfigurationError(option, f"{item!r} in {ref!r} is not key=value (e.g. select: os_distro=almalinux, tag=belle2)")
        if key == "tag":
            tags.append(value)
        else:
            properties[key] = value
    return ImageSelection(tuple(sorted(properties.items())), tuple(tags))
