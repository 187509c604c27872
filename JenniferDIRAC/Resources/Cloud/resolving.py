"""Image, flavor and network references as written in the CS: an id, or ``name:<name>``.

A backend declares how each kind is looked up (a ``Lookup``: by name, by id, which errors mean
"no such id") and ``Lookup.find`` runs it the same way for every kind and every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """How one kind of reference is found on a cloud; each callable gets the client of the call."""

    kind: str  # "image", "flavor", "network": named in errors
    by_name: Callable[[Any, str], Iterable[T | None]]
    #: None: an id is used as it is (Nova takes an image id without the image service)
    by_id: Callable[[Any, str], Iterable[T | None]] | None = None
    #: errors of a lookup that mean "nothing matches" (a cloud refusing an unknown id)
    no_match: tuple[type[Exception], ...] = ()

    def find(self, ref: str, calling: Callable[[str], AbstractContextManager[Any]]) -> T | str:
        """The one object `ref` names; `calling(what)` gives the client of one cloud call and
        translates its errors. NotFound if nothing matches, CloudError if a name is ambiguous."""
        name = reference_name(ref)
        if name is None and self.by_id is None:
            return ref
        try:
            with calling(f"resolving {self.kind} {ref}") as client:
                found = list(self.by_name(client, name) if name is not None else self.by_id(client, ref))
        except self.no_match:
            found = []
        return single_match(self.kind, ref, [item for item in found if item is not None])
