"""VM.owner: the OwnerTags read from a VM's metadata, stamp included, built once per VM; the
cache shared between VMs is keyed without the stamp, so VMs created for ever do not grow it."""

import dataclasses

from JenniferDIRAC.Resources.Cloud import model
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name


def _vm(owner: OwnerTags | None, **metadata: str) -> VM:
    tags = owner.to_metadata() if owner is not None else {}
    return VM(id=make_vm_name(), name=make_vm_name(), state=VMState.ACTIVE, metadata={**tags, **metadata})


def test_owner_is_the_metadata_read_back_stamp_included():
    owner = OwnerTags("inst", "ce1.example", vo="belle", stamp=make_stamp(), profile="p", site="S", queue="q")
    vm = _vm(owner, other="x")
    assert vm.owner == owner and vm.owner.stamp == vm.stamp == owner.stamp
    assert vm.owner is vm.owner  # built once for the VM
    assert _vm(None).owner is None and _vm(None, **{model.TAG_STAMP: make_stamp()}).owner is None


def test_a_change_of_the_metadata_is_read():
    owner = OwnerTags("inst", "ce1.example", stamp=make_stamp())
    vm = _vm(owner)
    first = vm.owner
    vm.metadata = {**vm.metadata, model.TAG_STAMP: make_stamp(), model.TAG_QUEUE: "q2"}
    assert vm.owner.stamp == vm.stamp != first.stamp and vm.owner.queue == "q2"
    vm.metadata = {}
    assert vm.owner is None
    copied = dataclasses.replace(_vm(owner), state=VMState.DELETING)  # the listing's DELETING copy
    assert copied.owner == owner


def test_vms_created_for_ever_do_not_grow_the_shared_cache():
    ce = OwnerTags("inst", "ce-growth.example", vo="belle", site="S")
    first = _vm(dataclasses.replace(ce, stamp=make_stamp())).owner
    entries = model._shared_owner_of.cache_info().currsize
    vms = [_vm(dataclasses.replace(ce, stamp=make_stamp())) for _ in range(3000)]
    owners = [vm.owner for vm in vms]
    assert model._shared_owner_of.cache_info().currsize == entries  # one entry for the CE, not 3,000
    assert len({o.stamp for o in owners}) == 3000 and all(ce.owns(o) for o in owners) and ce.owns(first)
