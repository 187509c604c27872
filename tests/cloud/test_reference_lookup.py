"""resolving.Lookup: the one way every backend finds an image, flavor or network reference."""

import contextlib

import pytest

from JenniferDIRAC.Resources.Cloud.errors import CloudError, CloudUnreachable, NotFound, RequestRejected, translated_errors
from JenniferDIRAC.Resources.Cloud.resolving import Lookup

CATALOGUE = {"img-1": "AlmaLinux-9", "img-2": "Debian-12", "img-3": "Debian-12"}


class Client:
    def __init__(self):
        self.calls = []

    def by_name(self, name):
        self.calls.append(("name", name))
        return [i for i, n in CATALOGUE.items() if n == name]

    def by_id(self, ref):
        self.calls.append(("id", ref))
        if ref not in CATALOGUE:
            raise RequestRejected(f"no such id {ref}")
        return [ref]


def calling_with(client, seen):
    @contextlib.contextmanager
    def calling(what):
        seen.append(what)
        yield client

    return calling


LOOKUP = Lookup("image", by_name=Client.by_name, by_id=Client.by_id, no_match=(RequestRejected,))


def test_a_name_and_an_id_are_found_in_one_named_call():
    client, seen = Client(), []
    assert LOOKUP.find("name:AlmaLinux-9", calling_with(client, seen)) == "img-1"
    assert LOOKUP.find("img-2", calling_with(client, seen)) == "img-2"
    assert client.calls == [("name", "AlmaLinux-9"), ("id", "img-2")]
    assert seen == ["resolving image name:AlmaLinux-9", "resolving image img-2"]


def test_no_match_and_an_ambiguous_name_are_errors_naming_the_reference():
    client = Client()
    with pytest.raises(NotFound, match="no image matches 'name:CentOS-7'"):
        LOOKUP.find("name:CentOS-7", calling_with(client, []))
    with pytest.raises(NotFound, match="no image matches 'img-9'"):  # the cloud refused the id
        LOOKUP.find("img-9", calling_with(client, []))
    with pytest.raises(CloudError, match="2 images match 'name:Debian-12'; use the image id instead"):
        LOOKUP.find("name:Debian-12", calling_with(client, []))


def test_without_an_id_lookup_an_id_is_used_as_it_is_without_a_call():
    client, seen = Client(), []
    names_only = Lookup("image", by_name=Client.by_name)
    assert names_only.find("any-id", calling_with(client, seen)) == "any-id"
    assert client.calls == [] and seen == []


def test_a_failure_that_is_not_no_match_stays_what_the_backend_made_of_it():
    def down(client, name):
        raise OSError("connection refused")

    def translate(exc, what):
        return CloudUnreachable(f"{what}: {exc}")

    @contextlib.contextmanager
    def calling(what):
        with translated_errors(what, translate):
            yield Client()

    with pytest.raises(CloudUnreachable, match="resolving network name:private: connection refused"):
        Lookup("network", by_name=down, no_match=(RequestRejected,)).find("name:private", calling)


def test_translated_errors_passes_cloud_errors_and_leaves_other_library_errors_alone():
    def translate(exc, what):
        return CloudUnreachable(f"{what}: translated")

    with pytest.raises(NotFound, match="as it was"):
        with translated_errors("x", translate, (ValueError,)):
            raise NotFound("as it was")
    with pytest.raises(CloudUnreachable, match="x: translated") as excinfo:
        with translated_errors("x", translate, (ValueError,)):
            raise ValueError("secret-bearing text")
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    with pytest.raises(KeyError):  # not one of the library's errors
        with translated_errors("x", translate, (ValueError,)):
            raise KeyError("bug")
