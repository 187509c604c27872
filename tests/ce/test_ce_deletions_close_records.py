"""A VM the cloud CE deletes (cleanupPilots, killJob) has its VM record closed in VMDB (real MariaDB),
so the VMDirector accounts it in its next cycle.

Found by ``make demo``: when DIRAC's SiteDirector ran cleanupPilots before the VMDirector's cycle
saw the powered-off VM, the record stayed open; the VMDirector, which never saw the VM listed
again, took it for one still being created and waited LostPilotGrace (600 s) to account it.
"""

from __future__ import annotations

import datetime as dt

from ce_testkit import CE_NAME, INSTALLATION, live_servers
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.references import parse_reference
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import (
    Account,
    CEView,
    RecordGone,
    VMRecord,
    decide,
)


class PilotStatuses:
    """PilotAgentsDB as cleanupPilots reads it (the SiteDirector keeps the real one)."""

    def __init__(self, statuses):
        self.statuses = statuses

    def getPilotInfo(self, refs):
        return {"OK": True, "Value": {r: {"Status": self.statuses[r]} for r in refs if r in self.statuses}}


def records(db) -> dict[str, dict]:
    result = db.getVMs(ce=CE_NAME)
    assert result["OK"], result.get("Message")
    return {r["vm_name"]: r for r in result["Value"]}


def director_sees(db, listed_names: set[str]):
    """What the VMDirector's policy decides about this CE's unlisted records, just after creation
    (well within LostPilotGrace), from the VMDB rows it reads each cycle."""
    rows = {}
    for query in ({"active_only": True}, {"unaccounted_only": True}):
        for row in db.getVMs(ce=CE_NAME, **query)["Value"]:
            rows[row["vm_name"]] = VMRecord.from_record(row)
    view = CEView(OwnerTags(INSTALLATION, CE_NAME), [], {}, rows, {}, dt.datetime.now(dt.timezone.utc))
    return [a for a in decide(view).actions if a.vm_name not in listed_names]


def test_cleanup_closes_the_records_of_the_vms_it_deletes(db, make_ce, wrapper, local_cloud, monkeypatch):
    import JenniferDIRAC.Resources.Computing.CloudComputingElement as module

    ce = make_ce()
    done, running = ce.submitJob(wrapper, "", 2)["Value"]
    servers = {s.name: s for s in live_servers(local_cloud)}
    for ref in (done, running):
        local_cloud.compute.set_state(servers[parse_reference(ref)[1]].id, "SHUTOFF")
    monkeypatch.setattr(
        module, "getPilotAgentsDB",
        lambda: PilotStatuses({done: PilotStatus.DONE, running: PilotStatus.RUNNING}),
    )

    assert ce.cleanupPilots()["Value"] == 1
    done_name, running_name = parse_reference(done)[1], parse_reference(running)[1]
    rows = records(db)
    assert rows[done_name]["deleted"] is not None
    assert rows[done_name]["delete_reason"] == "stopped VM of a final pilot"
    assert rows[running_name]["deleted"] is None  # still the SiteDirector's to see end
    # The VMDirector accounts the deleted VM now, without waiting for it to appear.
    assert Account(done_name) in director_sees(db, {running_name})


def test_kill_closes_the_records_of_the_vms_it_deletes(db, make_ce, wrapper, local_cloud):
    ce = make_ce()
    killed, kept = ce.submitJob(wrapper, "", 2)["Value"]
    assert ce.killJob([killed])["OK"]
    killed_name, kept_name = parse_reference(killed)[1], parse_reference(kept)[1]
    rows = records(db)
    assert (rows[killed_name]["deleted"] is not None, rows[killed_name]["delete_reason"]) == (
        True, "killed by the CE"
    )
    assert rows[kept_name]["deleted"] is None
    decided = director_sees(db, {kept_name})
    assert Account(killed_name) in decided
    assert not [a for a in decided if isinstance(a, RecordGone)]  # closed already, not guessed gone
