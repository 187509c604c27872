"""OpenStackBackend.list_installation_changes against real Nova 34 and Keystone 30: the refresh
that asks for deleted servers apart (ids of every changed server, then the details of those in a
listed state) sees what the one-request refresh and a full listing see. An emulator cannot prove
Nova's status filter (repeated, by vm_state, deleted ones alone refused to a project member) or
that its brief listing with changes-since names the deleted servers."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from openstack_testkit import wait_until

from JenniferDIRAC.Resources.Cloud.model import OwnerTags

INSTALLATION = "install-changes"


def _server(real_openstack, installation: str = INSTALLATION, prefix: str = "jdirac-") -> str:
    owner = OwnerTags(installation=installation, ce="ce.changes.example", vo="vo1")
    return real_openstack.create_server(f"{prefix}{uuid.uuid4().hex}", metadata=owner.to_metadata())


def _seen(changes) -> tuple[dict[str, str], set[str]]:
    return {vm.id: vm.state.value for vm in changes.vms}, set(changes.gone)


def test_deleted_servers_asked_apart_are_gone_as_in_one_request_and_a_full_listing(real_openstack, backend):
    since = datetime.now(UTC) - timedelta(seconds=5)
    running, stopped, deleted, erred = (_server(real_openstack) for _ in range(4))
    foreign = _server(real_openstack, installation="someone-else")
    real_openstack.stop(stopped)
    real_openstack.set_error(erred)
    real_openstack.wait_status(running, "ACTIVE")
    real_openstack.wait_status(deleted, "ACTIVE")
    real_openstack.nova("DELETE", f"/servers/{deleted}", expect=(204,))
    wait_until(lambda: deleted not in {s.id for s in real_openstack.servers()}, 60, "deleted server gone")

    apart = backend.list_installation_changes(INSTALLATION, since, deleted_apart=True)
    together = backend.list_installation_changes(INSTALLATION, since)

    full = {vm.id: vm.state.value for vm in backend.list_installation_vms(INSTALLATION)}
    assert set(full) == {running, stopped, erred}
    assert _seen(apart)[0] == _seen(together)[0] == full
    assert deleted in apart.gone and deleted in together.gone
    assert foreign in apart.gone and foreign in together.gone  # listed, but not this installation's


def test_a_brief_listing_names_deleted_servers_and_the_status_filter_leaves_them_out(real_openstack, backend):
    """The two requests of the refresh, as Nova answers them to a project member."""
    prefix = f"brief-{uuid.uuid4().hex[:8]}-"  # not the servers other tests deleted in the same seconds
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)) + f"&name=^{prefix}"
    kept, deleted = _server(real_openstack, prefix=prefix), _server(real_openstack, prefix=prefix)
    real_openstack.wait_status(deleted, "ACTIVE")
    real_openstack.nova("DELETE", f"/servers/{deleted}", expect=(204,))
    wait_until(lambda: deleted not in {s.id for s in real_openstack.servers()}, 60, "deleted server gone")
    member = real_openstack.demo_token()

    brief = real_openstack.nova("GET", f"/servers?changes-since={since}", token=member)["servers"]
    statuses = "&".join(f"status={s}" for s in ("ACTIVE", "BUILD", "SHUTOFF", "ERROR"))
    detailed = real_openstack.nova("GET", f"/servers/detail?changes-since={since}&{statuses}", token=member)["servers"]
    everything = real_openstack.nova("GET", f"/servers/detail?changes-since={since}", token=member)["servers"]

    assert {s["id"] for s in brief} == {kept, deleted}
    assert set(brief[0]) == {"id", "name", "links"}
    assert {s["id"] for s in detailed} == {kept}
    assert {s["id"]: s["status"] for s in everything}[deleted] == "DELETED"
    real_openstack.nova("GET", f"/servers/detail?changes-since={since}&status=DELETED", token=member,
                        expect=(403,))
