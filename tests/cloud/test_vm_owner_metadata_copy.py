"""VM.owner is kept with a copy of the metadata it was read from: the same owner while the
metadata compares equal (the same dict, or an equal new one), built again when the dict is
changed in place."""

from __future__ import annotations

from JenniferDIRAC.Resources.Cloud import model
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp


def test_the_metadata_changed_in_place_is_read_again():
    owner = OwnerTags("inst", "ce1.example", profile="p", stamp=make_stamp())
    vm = VM(id="1", name="jdirac-" + "a" * 32, state=VMState.ACTIVE, metadata=owner.to_metadata())
    first = vm.owner
    vm.metadata[model.TAG_QUEUE] = "q2"
    assert vm.owner.queue == "q2" and first.queue == ""
    vm.metadata[model.TAG_STAMP] = stamp = make_stamp()
    assert vm.owner.stamp == stamp
    del vm.metadata[model.TAG_CE]
    assert vm.owner is None
    vm.metadata[model.TAG_CE] = "ce1.example"
    assert vm.owner == OwnerTags("inst", "ce1.example", profile="p", stamp=stamp, queue="q2")


def test_equal_metadata_gives_the_same_owner():
    owner = OwnerTags("inst", "ce1.example", stamp=make_stamp())
    vm = VM(id="1", name="jdirac-" + "b" * 32, state=VMState.ACTIVE, metadata={**owner.to_metadata(), "other": "x"})
    first = vm.owner
    vm.metadata = dict(vm.metadata)  # a new, equal dict (a listing's refreshed VM)
    assert vm.owner is first
    vm.metadata["other"] = "y"  # not an owner tag: an equal owner
    assert vm.owner == first
