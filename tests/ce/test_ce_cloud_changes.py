"""The cloud CE when the cloud changes under it (LocalCloud, real HTTP): images replaced, ids
gone, credentials rotated, garbled answers, VMs not listed yet, consoles refused."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from ce_testkit import CE_NAME, live_servers, ok, write_cloud_auth
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.references import parse_reference

IMAGES = ("image", "GET", "/v2/images")
IMAGE_NAME = "EL9-x86_64"


def replace_image(cloud, name=IMAGE_NAME):
    """The site rotates the image behind `name:<name>`: the old one is deleted."""
    (old,) = cloud.image.find(name)
    del cloud.image.images[old.id]
    return cloud.image.add_image(name, min_disk=old.min_disk, properties=dict(old.properties))


def server_image(cloud, ref):
    name = parse_reference(ref)[1]
    return next(s.image_id for s in live_servers(cloud) if s.name == name)


# --- references ----------------------------------------------------------------------------------
def test_image_replaced_between_cycles_is_resolved_again_at_once(make_ce, wrapper, local_cloud):
    ce = make_ce(MaxCreateAttempts=1)
    first = ok(ce.submitJob(wrapper, "", 1))
    replacement = replace_image(local_cloud)
    local_cloud.counters.reset()
    # the cached id is gone: Nova refuses the creates, the CE resolves again and retries once
    refs = ok(ce.submitJob(wrapper, "", 2))
    assert len(refs) == 2 and {server_image(local_cloud, r) for r in refs} == {replacement.id}
    assert local_cloud.counters.get(*IMAGES) == 1
    assert local_cloud.counters.get("compute", "POST", "/v2.1/servers") == 4  # 2 refused, 2 created
    assert server_image(local_cloud, first[0]) != replacement.id


def test_resolved_ids_expire_after_reference_cache_seconds(make_ce, wrapper, local_cloud):
    ce = make_ce(ReferenceCacheSeconds=0)
    ok(ce.submitJob(wrapper, "", 1))
    local_cloud.counters.reset()
    ok(ce.submitJob(wrapper, "", 1))
    assert local_cloud.counters.get(*IMAGES) == 1  # resolved again: the TTL passed
    cached = make_ce(ce_name="cached.local.test")  # the default TTL (an hour)
    ok(cached.submitJob(wrapper, "", 1))
    local_cloud.counters.reset()
    ok(cached.submitJob(wrapper, "", 1))
    assert local_cloud.counters.get(*IMAGES) == 0


def test_image_given_by_id_never_asks_the_image_service(make_ce, wrapper, local_cloud):
    (image,) = local_cloud.image.find(IMAGE_NAME)
    ce = make_ce(Instance_Image=image.id)
    local_cloud.faults.http_error(503, service="image", times=None)
    ref = ok(ce.submitJob(wrapper, "", 1))[0]
    assert server_image(local_cloud, ref) == image.id
    assert local_cloud.counters.total("image") == 0


def test_ce_status_resolves_neither_image_nor_networks(make_ce, local_cloud):
    ce = make_ce()
    local_cloud.faults.http_error(503, service="image", times=None)
    local_cloud.faults.http_error(503, service="network", times=None)
    status = ce.getCEStatus()
    assert status["OK"], status.get("Message")
    assert local_cloud.counters.total("image") == 0 and local_cloud.counters.total("network") == 0


# --- credentials ----------------------------------------------------------------------------------
def test_rotated_cloud_auth_file_is_read_without_a_restart(make_ce, wrapper, local_cloud, tmp_path):
    ce = make_ce()
    assert ce.getCEStatus()["OK"]
    creds = local_cloud.credentials
    # the site rotates the password: the old one stops working, tokens issued with it end
    user = local_cloud.identity.users[creds.user_id]
    user.password = "rotated-pw-0d2c81"
    local_cloud.identity.expire_all_tokens()
    auth_file = ce.ceParameters["CloudAuth"]
    write_cloud_auth(tmp_path / "new.auth", creds.username, "rotated-pw-0d2c81")
    os.replace(tmp_path / "new.auth", auth_file)  # as configuration management writes it
    status = ce.getCEStatus()  # the first call after the rotation already works
    assert status["OK"], status.get("Message")
    assert ok(ce.submitJob(wrapper, "", 1))


# --- one bad answer loses nothing ----------------------------------------------------------------
def test_garbled_lookup_answer_loses_no_vm_of_the_batch(db, make_ce, wrapper, local_cloud):
    # one create is held past the client's timeout (the cloud creates it anyway); the lookup by
    # name that follows gets a response cut short
    ce = make_ce(HTTPTimeout=1, MaxCreateAttempts=1, MaxSubmitThreads=1)
    local_cloud.faults.slow(2.0, service="compute", method="POST", path="/v2.1/servers", times=1)
    local_cloud.faults.garble(service="compute", method="GET", path="/v2.1/servers/detail", times=1)
    result = ce.submitJob(wrapper, "", 3)
    assert result["OK"], result.get("Message")
    deadline = time.monotonic() + 15  # the held create finishes after the client gave up on it
    while len(live_servers(local_cloud)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    names = {s.name for s in live_servers(local_cloud)}
    assert len(names) == 3
    returned = {parse_reference(r)[1] for r in result["Value"]}
    assert returned == names  # the uncertain VM's pilot too: it does exist
    records = {r["vm_name"]: r for r in ok(db.getVMs(ce=CE_NAME))}
    assert set(records) == names  # every VM that exists is recorded
    (uncertain,) = [n for n in names if records[n]["cloud_state"] == "CREATE_UNCERTAIN"]
    assert records[uncertain]["deleted"] is None  # left for the VMDirector, not marked failed
    assert all(records[n]["vm_id"] for n in returned - {uncertain})


# --- not listed is not gone at once --------------------------------------------------------------
def test_vm_not_listed_right_after_creation_stays_submitted(db, make_ce, wrapper, local_cloud):
    ce = make_ce()
    ref = ok(ce.submitJob(wrapper, "", 1))[0]
    name = parse_reference(ref)[1]
    (server,) = live_servers(local_cloud)
    local_cloud.compute.delete_server(None, server.id)  # an eventually consistent listing misses it
    local_cloud.compute.finish_deletions()
    assert ok(ce.getJobStatus([ref])) == {ref: PilotStatus.SUBMITTED}
    # another process (a restarted SiteDirector) reads the creation time from VMDB
    other = make_ce()
    assert ok(other.getJobStatus([ref])) == {ref: PilotStatus.SUBMITTED}
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=601)
    db._update("UPDATE VMs SET `Created` = %s WHERE `VMName` = %s", args=(old.replace(tzinfo=None), name))
    assert ok(make_ce().getJobStatus([ref])) == {ref: PilotStatus.DELETED}  # past LostPilotGrace


def test_vm_seen_then_missing_or_killed_is_deleted(make_ce, wrapper, local_cloud):
    ce = make_ce(ListingCacheSeconds=0)
    seen, killed = ok(ce.submitJob(wrapper, "", 2))
    assert set(ok(ce.getJobStatus([seen, killed])).values()) <= {PilotStatus.SUBMITTED, PilotStatus.RUNNING}
    server = next(s for s in live_servers(local_cloud) if s.name == parse_reference(seen)[1])
    local_cloud.compute.delete_server(None, server.id)
    assert ce.killJob([killed])["OK"]
    assert ok(ce.getJobStatus([seen, killed])) == {seen: PilotStatus.DELETED, killed: PilotStatus.DELETED}


# --- job output -----------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["ERROR", "BUILD"])
def test_job_output_of_a_vm_nova_has_no_console_for(db, make_ce, wrapper, local_cloud, state):
    ce = make_ce()
    ref = ok(ce.submitJob(wrapper, "", 1))[0]
    name = parse_reference(ref)[1]
    (server,) = live_servers(local_cloud)
    local_cloud.compute.set_state(server.id, state, fault="No valid host was found" if state == "ERROR" else None)
    ok(db.storeLog(name, "boot", b"cloud-init started\n"))
    message = f"Cannot 'os-getConsoleOutput' instance {server.id} while it is in vm_state {state.lower()}"
    local_cloud.faults.http_error(409, message=message, service="compute", method="POST", path="*/action")
    stdout, _ = ok(ce.getJobOutput(ref))
    assert "==== boot (uploaded by " in stdout and "cloud-init started" in stdout
    assert "==== not available ====" in stdout and "console log: " in stdout and "HTTP 409" in stdout
