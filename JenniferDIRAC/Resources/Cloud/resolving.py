"""Image, flavor and network references as written in the CS: an id, or ``name:<name>``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from JenniferDIRAC.Resources.Cloud.errors import CloudError, NotFound, RequestRejected

T = TypeVar("T")
NAME_PREFIX = "name:"


class StaleReference(RequestRejected):
    """A create refused because its image, flavor or network id no longer exists (a site
    replaced ``name:AlmaLinux-9``): the reference must be resolved again, then the create retried."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what  # "image", "flavor" or "network"


def reference_name(ref: str) -> str | None:
    """The name of a ``name:<name>`` reference, None for an id."""
    return ref[len(NAME_PREFIX):] if ref.startswith(NAME_PREFIX) else None


def single_match(kind: str, ref: str, found: Sequence[T]) -> T:
    """The one object matching `ref`; NotFound if none, CloudError if the name is ambiguous."""
    if not found:
        raise NotFound(f"no {kind} matches {ref!r}")
    if len(found) > 1:
        raise CloudError(f"{len(found)} {kind}s match {ref!r}; use the {kind} id instead")
    return found[0]
