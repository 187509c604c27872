"""VMDB.getBootstraps on MariaDB: what the VMDirector reads to tell a failed boot, through the
client the agent uses (VMStateClient, local VMDB)."""

import datetime as dt

from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module
from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient


def _record(db, name):
    assert db.recordVMs([{"vm_name": name, "ce": "CLOUD.bootstraps.test", "created": None}])["OK"]


def test_it_tells_never_fetched_from_fetched_and_has_nothing_for_vms_without_one(vmdb):
    db = vmdb.db
    for name in ("jdirac-bs-unfetched", "jdirac-bs-fetched", "jdirac-bs-userdata"):
        _record(db, name)
    assert db.storeBootstrap("jdirac-bs-unfetched", b"sealed-1")["OK"]
    assert db.storeBootstrap("jdirac-bs-fetched", b"sealed-2")["OK"]
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    assert db.claimBootstrap("jdirac-bs-fetched")["Value"] == b"sealed-2"

    names = ["jdirac-bs-unfetched", "jdirac-bs-fetched", "jdirac-bs-userdata", "jdirac-bs-unknown"]
    result = db.getBootstraps(names)
    assert result["OK"], result
    assert set(result["Value"]) == {"jdirac-bs-unfetched", "jdirac-bs-fetched"}
    assert result["Value"]["jdirac-bs-unfetched"] is None
    assert result["Value"]["jdirac-bs-fetched"] >= before - dt.timedelta(seconds=2)

    # a replay and the clean-up of ended VMs' wrappers leave the fetch time as it was
    fetched = result["Value"]["jdirac-bs-fetched"]
    assert db.claimBootstrap("jdirac-bs-fetched")["Value"] is None
    assert db.markVMsDeleted(["jdirac-bs-unfetched"], "test")["OK"]
    assert db.forgetEndedBootstraps()["OK"]
    assert db.getBootstraps(names)["Value"] == {"jdirac-bs-unfetched": None, "jdirac-bs-fetched": fetched}

    client_module._db = None  # the client's VMDB is the one gConfig names now (this test's)
    try:
        through_client = VMStateClient().getBootstraps(names)
    finally:
        client_module._db = None
    assert through_client["OK"], through_client
    assert through_client["Value"]["jdirac-bs-fetched"] == fetched.replace(tzinfo=dt.UTC)
    assert through_client["Value"]["jdirac-bs-unfetched"] is None


def test_bad_names_are_an_error_naming_the_field(vmdb):
    result = vmdb.db.getBootstraps(["jdirac-ok", 42])
    assert not result["OK"] and "vm_name" in result["Message"]
    assert vmdb.db.getBootstraps([])["Value"] == {}
