"""Real LocalCloud VMs whose bootstrap fails without the VM being able to say so, each ended by
one real VMDirector cycle (dirac-agent) on MariaDB: the pilot Aborted with the reason, the VM
deleted, the queue backed off; a VM created without a bootstrap (its wrapper in user data) in the
same cycle ends as before.

(a) the VM cannot reach the endpoint at all (its address is not forwarded into the sandbox):
    no fetch, no shutdown message;
(b) the VM's fetch wins the claim at the endpoint but its download is cut short, and nothing it
    sends afterwards gets through (a front that passes the first fetch only, truncated).
"""

from __future__ import annotations

import http.server
import threading
import types

import pytest
import requests
from test_vm_bootstrap_boot import _director_world, boot_vm
from waiting import wait_until as wait_for

from JenniferDIRAC.Resources.Cloud.model import OwnerTags

PROFILE = "LocalTest"


class TruncatingFront:
    """An HTTP front between the VM and the real endpoint: the first bootstrap fetch is passed on
    (the endpoint's claim is won) and its answer cut after half its body; every later request is
    refused with 503, unforwarded (a network gone bad after the fetch)."""

    def __init__(self, endpoint_url: str):
        front = self
        self.endpoint_url = endpoint_url
        self.fetches_passed = 0
        self.refused: list[str] = []
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _refuse(self):
                with front._lock:
                    front.refused.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                with front._lock:
                    first = self.path.endswith("/bootstrap") and front.fetches_passed == 0
                    if first:
                        front.fetches_passed += 1
                if not first:
                    return self._refuse()
                answer = requests.get(front.endpoint_url + self.path, timeout=30,
                                      headers={"Authorization": self.headers.get("Authorization", "")})
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content[: len(answer.content) // 2])
                self.wfile.flush()
                self.close_connection = True

            do_PUT = do_POST = _refuse

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=30)


def _world(local_cloud, mariadb, vmdb, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    director = _director_world()
    client_module._db = None  # VMStateClient keeps one VMDB per process
    world = director.World(local_cloud, mariadb, vmdb, tmp_path)
    owner = OwnerTags(installation=director.INSTALLATION, ce=director.CE, vo=director.VO, site=director.SITE,
                      profile=PROFILE)
    return director, world, owner


def _boot_and_power_off(local_cloud, world, director, owner, endpoint, authority, db):
    ctx, _, _, vm = boot_vm(local_cloud, endpoint, authority, db, ce=director.CE, owner=owner)
    world.add_pilot(ctx.vm_name, "Submitted", update_age=30, submitted_age=30, ce=director.CE)
    # a VM of the same CE created the old way (no bootstrap), powered off after an hour's work
    world.add_vm("old", "SHUTOFF", 3600, started_after=60, pilot="Submitted", pilot_age=600)
    conn = local_cloud.connect()
    wait_for(lambda: conn.compute.get_server(vm.id).status == "SHUTOFF", 240, "the VM to power off")
    return ctx, vm


def _check_the_cycle(world, director, db, ctx, out, reason, backoff_reason):
    status, why = world.pilot(ctx.vm_name)
    assert status == "Aborted" and reason in why, director.ce_line(out)
    assert ctx.vm_name not in world.servers(), director.ce_line(out)
    (record,) = db.getVMs(names=[ctx.vm_name])["Value"]
    assert record["deleted"] is not None and reason in record["delete_reason"]
    backoff = db.getBackoff(director.CE, PROFILE)["Value"]
    assert backoff and backoff_reason in backoff["reason"], backoff
    # the old-way VM: an ordinary power-off, its pilot Done, its queue not backed off
    assert world.pilot("old")[0] == "Done"
    assert world.names["old"] not in world.servers()
    assert not db.getBackoff(director.CE, "")["Value"]


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_a_vm_that_cannot_reach_the_endpoint_is_a_failed_boot(local_cloud, live_endpoint, mariadb, vmdb,
                                                             tmp_path):
    server, authority, db, app = live_endpoint
    address = server.url.split("://", 1)[1]
    assert address not in (local_cloud.booter.reachable or ())  # the VM cannot reach the endpoint
    director, world, owner = _world(local_cloud, mariadb, vmdb, tmp_path)
    try:
        ctx, vm = _boot_and_power_off(local_cloud, world, director, owner, server, authority, db)
        # nothing reached the endpoint: no fetch, no shutdown message, no heartbeat
        (record,) = db.getVMs(names=[ctx.vm_name])["Value"]
        assert (record["shutdown_code"], record["last_heartbeat"]) == (None, None)
        assert db.getBootstraps([ctx.vm_name, world.names["old"]])["Value"] == {ctx.vm_name: None}
        assert "could not fetch the bootstrap" in local_cloud.booter.sandbox(vm.id).console.read_text()

        out = world.run_agent()

        _check_the_cycle(world, director, db, ctx, out, "bootstrap never fetched, no pilot ran",
                         "could not fetch its bootstrap")
    finally:
        world.close()


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_a_vm_whose_fetched_bootstrap_is_cut_short_is_a_failed_boot(local_cloud, live_endpoint, mariadb, vmdb,
                                                                   tmp_path):
    server, authority, db, app = live_endpoint
    director, world, owner = _world(local_cloud, mariadb, vmdb, tmp_path)
    booter = local_cloud.booter
    try:
        with TruncatingFront(server.url) as front:
            booter.reachable = (*(booter.reachable or ()), front.url.split("://", 1)[1])
            ctx, vm = _boot_and_power_off(local_cloud, world, director, owner,
                                          types.SimpleNamespace(url=front.url), authority, db)
        assert front.fetches_passed == 1
        assert any(r.startswith("PUT ") and r.endswith("/shutdown_message") for r in front.refused), front.refused
        # the claim was won (the fetch time is in VMDB), then nothing more got through
        (record,) = db.getVMs(names=[ctx.vm_name])["Value"]
        assert (record["shutdown_code"], record["last_heartbeat"]) == (None, None)
        fetched = db.getBootstraps([ctx.vm_name])["Value"][ctx.vm_name]
        assert fetched is not None
        assert db.getBootstrapIncidents()["Value"].get(ctx.vm_name, 0) == 0  # no replay: not that rule
        # the SiteDirector came first: its getJobStatus maps the SHUTOFF VM to a Done pilot
        world.mariadb.execute(f"UPDATE PilotAgents SET Status = 'Done' WHERE PilotJobReference = '{ctx.pilot_reference}'",
                              database=world.pilot_db)
        assert world.pilot(ctx.vm_name)[0] == "Done"

        out = world.run_agent()

        _check_the_cycle(world, director, db, ctx, out, "bootstrap fetched but the VM never reported",
                         "fetched its bootstrap but never reported")
    finally:
        world.close()


def test_running_past_boot_timeout_or_gone_without_a_fetch_in_a_real_cycle(local_cloud, mariadb, vmdb, tmp_path):
    """No boot needed: LocalCloud servers and VMDB rows as a CE leaves them. BootTimeout is 600 s
    and LostPilotGrace 120 s in the agent's configuration."""
    import datetime as dt

    from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference

    director, world, _ = _world(local_cloud, mariadb, vmdb, tmp_path)
    db = vmdb.db
    try:
        world.add_vm("late", "ACTIVE", 700, started_after=30, pilot="Running", pilot_age=600)
        world.add_vm("booting", "ACTIVE", 300, started_after=30, pilot="Running", pilot_age=200)
        world.add_vm("old", "ACTIVE", 700, started_after=30, pilot="Running", pilot_age=600)  # no bootstrap
        gone = make_vm_name()
        assert db.recordVMs([{"vm_name": gone, "vm_id": "a-server-gone", "ce": director.CE, "site": director.SITE, "vo": director.VO,
                              "pilot_reference": pilot_reference(director.CE, gone), "stamp": "s" * 32,
                              "created": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)}])["OK"]
        # the SiteDirector came first: its getJobStatus says Deleted for a VM missing from the listing
        world.add_pilot(gone, "Deleted", update_age=600, submitted_age=3600, ce=director.CE)
        for name in (world.names["late"], world.names["booting"], gone):
            assert db.storeBootstrap(name, b"sealed")["OK"]

        out = world.run_agent()

        status, why = world.pilot("late")
        assert status == "Aborted" and "bootstrap not fetched within 600 s" in why, director.ce_line(out)
        assert world.names["late"] not in world.servers()
        status, why = world.pilot(gone)
        assert status == "Aborted" and "bootstrap never fetched" in why, director.ce_line(out)
        (record,) = db.getVMs(names=[gone])["Value"]
        assert record["deleted"] is not None and "bootstrap never fetched" in record["delete_reason"]
        backoff = db.getBackoff(director.CE, "")["Value"]
        assert backoff and "could not fetch its bootstrap" in backoff["reason"] and "1 more" in backoff["reason"]
        # within BootTimeout, and without a bootstrap: left alone
        for role in ("booting", "old"):
            assert world.pilot(role)[0] == "Running", role
            assert world.names[role] in world.servers(), role
    finally:
        world.close()
