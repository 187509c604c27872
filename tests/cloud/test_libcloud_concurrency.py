"""One LibcloudBackend used by many threads at once (the CE's submission threads, the
SiteDirector's status calls) against moto's EC2 server: every answer belongs to the call that
asked for it. libcloud keeps the last response on the connection, so a shared driver crosses
them."""

from __future__ import annotations

import contextlib
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import TAG_STAMP, OwnerTags, VMSpec
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name
from JenniferDIRAC.Resources.Cloud.submission import create_vms

AMI = "ami-03cf127a"


@pytest.fixture
def backend(moto_ec2, ec2_namespace):
    host, port = moto_ec2
    backend = LibcloudBackend(cloud_type="EC2", key="test", secret="concurrency-secret", driver_options={
        "region": "us-east-1", "host": host, "port": str(port), "secure": "False", "signature_version": "4"})
    yield backend
    backend.close()


@contextlib.contextmanager
def eager_thread_switches():
    """Switch threads every few microseconds instead of every 5 ms: a race between two Python
    statements of a shared driver then shows within a few hundred calls, not once in a while."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def spec_for(owner: OwnerTags) -> VMSpec:
    return VMSpec(name=make_vm_name(), image_id=AMI, flavor_id="t2.micro", user_data=b"#cloud-config\n",
                  metadata=owner.to_metadata())


def tags_of(boto, instance_ids: list[str]) -> dict[str, dict[str, str]]:
    reservations = boto.describe_instances(InstanceIds=instance_ids)["Reservations"]
    return {i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            for r in reservations for i in r["Instances"]}


def test_64_concurrent_creates_each_get_their_own_vm(backend, boto):
    installation = f"conc-{uuid.uuid4().hex[:8]}"
    owners = [OwnerTags(installation=installation, ce="ce.concurrency.example", stamp=make_stamp())
              for _ in range(64)]
    specs = [spec_for(owner) for owner in owners]
    with eager_thread_switches():
        submission = create_vms(backend, specs, OwnerTags(installation=installation, ce="ce.concurrency.example"),
                                max_threads=64, attempts=1)
    try:
        assert [o.error for o in submission.failed] == []
        ids = [o.vm.id for o in submission.outcomes]
        assert len(set(ids)) == 64
        cloud = tags_of(boto, ids)
        for outcome in submission.outcomes:
            tags = cloud[outcome.vm.id]  # what EC2 holds for the id the create returned
            assert tags["Name"] == outcome.spec.name
            assert tags[TAG_STAMP] == outcome.spec.metadata[TAG_STAMP]
            assert outcome.vm.name == outcome.spec.name
        assert backend._pool.built <= 64
    finally:
        assert backend.delete_vms([o.vm.id for o in submission.created]) == {}


def test_concurrent_listings_of_several_ces_see_only_their_own_vms(backend):
    installation = f"conc-{uuid.uuid4().hex[:8]}"
    owners = [OwnerTags(installation=installation, ce=f"ce-{n}.concurrency.example") for n in range(4)]
    created = {owner.ce: {backend.create_vm(spec_for(owner)).name for _ in range(3)} for owner in owners}
    mismatches: list[tuple[str, set[str]]] = []
    lock = threading.Lock()

    def list_repeatedly(owner: OwnerTags) -> int:
        for _ in range(30):
            names = {vm.name for vm in backend.list_vms(owner)}
            if names != created[owner.ce]:
                with lock:
                    mismatches.append((owner.ce, names))
        return 30

    try:
        with eager_thread_switches(), ThreadPoolExecutor(max_workers=8) as pool:
            listings = sum(pool.map(list_repeatedly, owners * 2))
        assert listings == 240
        assert mismatches == []
    finally:
        ids = [vm.id for owner in owners for vm in backend.list_vms(owner)]
        assert len(ids) == 12 and backend.delete_vms(ids) == {}
