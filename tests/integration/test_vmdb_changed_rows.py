"""VMDB.setVMStates writes only the VM rows whose record changes (a steady VMDirector cycle
reports thousands of VMs, few of them changed), against a real MariaDB."""

from __future__ import annotations

import datetime as dt

from test_vmdb import T0, ok, record


def updates(mariadb) -> int:
    """UPDATE statements the server has run (this test session's private mariadbd)."""
    ((_, value),) = mariadb.execute("SHOW GLOBAL STATUS LIKE 'Com_update'")
    return int(value)


def test_only_changed_vms_are_written_and_the_records_are_as_before(vmdb, mariadb):
    db = vmdb.db
    names = [f"jdirac-{i:032x}" for i in range(60)]
    ok(db.recordVMs([record(name) for name in names]))
    t1, t2 = T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=2)
    assert ok(db.setVMStates({name: "ACTIVE" for name in names}, when=t1)) == 60
    before = updates(mariadb)

    steady = {name: {"state": "ACTIVE", "vm_id": ""} for name in names}
    steady[names[0]] = "SHUTOFF"  # changed state
    steady[names[1]] = {"state": "ACTIVE", "vm_id": "server-1"}  # id learnt
    steady[names[2]] = {"state": "ACTIVE", "fault": "host lost"}  # fault given
    assert ok(db.setVMStates({**steady, "ghost": "ACTIVE"}, when=t2)) == 60

    assert updates(mariadb) - before == 1  # the 3 changed VMs in one statement
    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs())}
    assert (vms[names[0]]["cloud_state"], vms[names[0]]["ended"], vms[names[0]]["cloud_state_time"]) == (
        "SHUTOFF", t2, t2)
    assert vms[names[1]]["vm_id"] == "server-1" and vms[names[2]]["fault"] == "host lost"
    unchanged = vms[names[3]]
    assert (unchanged["cloud_state"], unchanged["started"], unchanged["cloud_state_time"]) == ("ACTIVE", t1, t1)
    before = updates(mariadb)
    assert ok(db.setVMStates(steady, when=t2 + dt.timedelta(minutes=1))) == 60
    assert updates(mariadb) - before == 0  # the same report again: nothing to write
