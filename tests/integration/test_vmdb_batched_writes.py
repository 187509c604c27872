"""VMDB writes many VMs' states and deletions in one UPDATE per chunk of 500 VMs (a VMDirector
first cycle deleting 779 VMs made 1,558 UPDATEs, two per VM), with each VM's own values and
the old rules (first deletion wins, state time moves only with the state), on a real MariaDB."""

from __future__ import annotations

import datetime as dt

from test_vmdb import T0, ok, record


def statements(mariadb) -> int:
    """UPDATE statements the server has run (this test session's private mariadbd)."""
    rows = mariadb.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_update', 'Com_update_multi')")
    return sum(int(value) for _, value in rows)


def test_779_deletions_are_two_statements_with_each_vms_values(vmdb, mariadb):
    db = vmdb.db
    names = [f"jdirac-batch{i:027x}" for i in range(779)]
    ok(db.recordVMs([record(name) for name in names]))
    t1, t2, t3 = (T0 + dt.timedelta(minutes=m) for m in (1, 2, 3))
    ok(db.setVMStates({name: "ACTIVE" for name in names}, when=t1))
    ok(db.markVMsDeleted({names[0]: "first deletion"}, when=t1))

    before = statements(mariadb)
    states = {name: {"state": "SHUTOFF", "fault": f"fault {i}" if i % 2 else "", "vm_id": f"server-{i}"}
              for i, name in enumerate(names)}
    assert ok(db.setVMStates(states, when=t2)) == 779
    reasons = {name: f"pilot Done {i}" for i, name in enumerate(names)}
    reasons[names[1]] = {"reason": "could not create", "failure_kind": "quota"}
    assert ok(db.markVMsDeleted(reasons, when=t3)) == 779
    assert statements(mariadb) - before == 4  # 2 chunks (500 + 279) of each, not 2 x 779

    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs(names=names))}
    first, second, odd, even = vms[names[0]], vms[names[1]], vms[names[777]], vms[names[778]]
    assert (first["deleted"], first["delete_reason"]) == (t1, "first deletion")  # the first deletion wins
    assert (second["delete_reason"], second["failure_kind"], second["deleted"]) == ("could not create", "quota", t3)
    assert (odd["delete_reason"], odd["fault"], odd["vm_id"]) == ("pilot Done 777", "fault 777", "server-777")
    assert (even["fault"], even["vm_id"], even["cloud_state"]) == ("", "server-778", "SHUTOFF")
    assert (even["cloud_state_time"], even["ended"], even["started"]) == (t2, t2, t1)

    again = {name: {"state": "SHUTOFF", "fault": ""} for name in names[700:]}
    ok(db.setVMStates(again, when=t3))  # same state, no fault: state time and faults kept
    vms = {vm["vm_name"]: vm for vm in ok(db.getVMs(names=names[777:]))}
    assert (vms[names[777]]["cloud_state_time"], vms[names[777]]["fault"]) == (t2, "fault 777")
