"""The one-time bootstrap fetch: user data carries a bootstrap token only; the pilot wrapper (with
its proxy) and the VM's report token wait sealed in VMDB and are handed out once by the endpoint.
A replay is refused and recorded as an incident the lifecycle policy acts on."""

import concurrent.futures
import datetime as dt

import pytest

from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMState
from JenniferDIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement
from JenniferDIRAC.WorkloadManagementSystem.Security.VMBootstrap import seal, unseal, SealError
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import CEView, DeleteVM, decide

WRAPPER = "#!/bin/bash\n# PROXY-MARKER -----BEGIN RSA PRIVATE KEY-----\necho pilot\n"


def sealed_for(endpoint, name):
    """What the CE stores at submitJob (its own code): (bootstrap token, report token)."""
    report = endpoint.authority.issue_for_vm(name, 3600)
    data, bootstrap = CloudComputingElement._sealBootstrap(endpoint.authority, name, report, WRAPPER)
    assert endpoint.db.storeBootstrap(name, data)["OK"]
    return bootstrap, report


def stored_sealed(db, name):
    result = db._query("SELECT `Sealed` FROM VMBootstrap WHERE `VMName` = %s", args=(name,))
    assert result["OK"], result
    return result["Value"][0][0]


def test_first_fetch_wins_the_others_are_refused_and_recorded(endpoint):
    (name,) = endpoint.register("jdirac-boot1")
    bootstrap, report = sealed_for(endpoint, name)
    sealed = stored_sealed(endpoint.db, name)
    assert b"PROXY-MARKER" not in bytes(sealed)  # a database dump holds no usable proxy

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        import requests

        def fetch(_):
            return requests.get(f"{endpoint.url}/vm/v1/{name}/bootstrap",
                                headers={"Authorization": f"Bearer {bootstrap}"}, timeout=30)

        answers = list(pool.map(fetch, range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 410, 410, 410], statuses
    (won,) = [a for a in answers if a.status_code == 200]
    first, _, wrapper = won.content.partition(b"\n")
    assert first == b"JDIRAC_ENDPOINT_TOKEN=" + report.encode()
    assert wrapper == WRAPPER.encode()
    assert won.headers["Cache-Control"] == "no-store"

    assert stored_sealed(endpoint.db, name) is None  # forgotten once fetched
    assert endpoint.db.getBootstrapIncidents()["Value"] == {name: 3}
    assert endpoint.app.refusals.totals["bootstrap replayed"] == 3
    assert endpoint.call("GET", name, "bootstrap", bootstrap).status_code == 410
    assert endpoint.db.getBootstrapIncidents()["Value"] == {name: 4}


def test_the_two_scopes_do_not_stand_in_for_each_other(endpoint):
    name, other = endpoint.register("jdirac-boot2", "jdirac-boot3")
    bootstrap, report = sealed_for(endpoint, name)
    other_bootstrap, _ = sealed_for(endpoint, other)
    assert endpoint.call("POST", name, "heartbeat", bootstrap, data=b"0.1").status_code == 401
    assert endpoint.call("GET", name, "bootstrap", report).status_code == 401
    assert endpoint.call("GET", name, "bootstrap", other_bootstrap).status_code == 403
    # none of these refusals spent the bootstrap or counted as a replay
    assert endpoint.db.getBootstrapIncidents()["Value"] == {}
    assert endpoint.call("GET", name, "bootstrap", bootstrap).status_code == 200
    assert endpoint.call("POST", name, "heartbeat", report, data=b"0.1").status_code == 204


def test_an_expired_bootstrap_token_is_refused_without_spending_it(endpoint):
    (name,) = endpoint.register("jdirac-boot4")
    bootstrap, _ = sealed_for(endpoint, name)
    endpoint.clock.now += 2 * 3600
    assert endpoint.call("GET", name, "bootstrap", bootstrap).status_code == 401
    assert stored_sealed(endpoint.db, name) is not None


def test_a_vm_without_a_stored_bootstrap_gets_404(endpoint):
    (name,) = endpoint.register("jdirac-boot5")
    token = endpoint.authority.issue_bootstrap(name)
    assert endpoint.call("GET", name, "bootstrap", token).status_code == 404


def test_wrappers_of_ended_vms_are_forgotten_and_purged(endpoint):
    (name,) = endpoint.register("jdirac-boot6")
    sealed_for(endpoint, name)
    assert endpoint.db.forgetEndedBootstraps()["Value"] == 0
    assert endpoint.db.markVMsDeleted([name], "test")["OK"]
    assert endpoint.db.forgetEndedBootstraps()["Value"] == 1
    assert stored_sealed(endpoint.db, name) is None


def test_the_seal_opens_only_with_its_token_and_vm():
    sealed = seal("jdb1.vm-a.1.sig", "vm-a", b"wrapper")
    assert unseal("jdb1.vm-a.1.sig", "vm-a", sealed) == b"wrapper"
    with pytest.raises(SealError):
        unseal("jdb1.vm-a.1.other", "vm-a", sealed)
    with pytest.raises(SealError):
        unseal("jdb1.vm-a.1.sig", "vm-b", sealed)


def test_an_older_vmdb_gets_the_bootstrap_table(vmdb):
    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

    assert vmdb.db._update("DROP TABLE VMBootstrap")["OK"]
    VMDB()  # the first connection of this version
    assert VMDB()._query("SELECT COUNT(*) FROM VMBootstrap")["OK"]


def test_a_replayed_bootstrap_deletes_the_vm():
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    owner = OwnerTags(installation="test", ce="CLOUD.A.uk")
    vm = VM(id="id-1", name="jdirac-replayed", state=VMState.ACTIVE, metadata=owner.to_metadata(),
            created=now - dt.timedelta(minutes=5))
    quiet = decide(CEView(owner, [vm], {}, {}, {}, now))
    replayed = decide(CEView(owner, [vm], {}, {}, {}, now, bootstrap_replayed=frozenset({vm.name})))
    assert not quiet.of_type(DeleteVM)
    (delete,) = replayed.of_type(DeleteVM)
    assert (delete.vm_name, delete.reason) == (vm.name, "bootstrap replayed")


def test_a_failed_fetch_is_reported_with_the_bootstrap_token_and_nothing_else(endpoint):
    (name,) = endpoint.register("jdirac-boot7")
    bootstrap = endpoint.authority.issue_bootstrap(name)  # no stored bootstrap: the fetch fails
    assert endpoint.call("GET", name, "bootstrap", bootstrap).status_code == 404
    # a bootstrap token may claim no other end, nor write anything else
    assert endpoint.call("PUT", name, "shutdown_message", bootstrap, data=b"200 Intended work completed ok").status_code == 403
    assert endpoint.call("PUT", name, "logs/pilot", bootstrap, data=b"x").status_code == 401
    assert endpoint.call("PUT", name, "shutdown_message", bootstrap,
                         data=b"510 bootstrap fetch failed").status_code == 204
    (record,) = endpoint.db.getVMs(names=[name])["Value"]
    assert (record["shutdown_code"], record["shutdown_message"]) == (510, "bootstrap fetch failed")


def _powered_off_view(heartbeat):
    from JenniferDIRAC.Resources.Cloud.references import pilot_reference
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import PilotRecord, VMRecord

    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    owner = OwnerTags(installation="test", ce="CLOUD.A.uk", profile="el9")
    vm = VM(id="id-2", name="jdirac-nofetch", state=VMState.SHUTOFF, metadata=owner.to_metadata(),
            created=now - dt.timedelta(minutes=5), updated=now - dt.timedelta(minutes=4))
    ref = pilot_reference(owner.ce, vm.name)
    record = VMRecord(vm.name, owner.ce, "el9", ref, vm.id, created=vm.created, shutdown_code=510,
                      shutdown_text="bootstrap fetch failed",
                      last_heartbeat=now - dt.timedelta(minutes=4) if heartbeat else None)
    pilots = {ref: PilotRecord(ref, "Submitted", now - dt.timedelta(minutes=5))}
    return decide(CEView(owner, [vm], pilots, {vm.name: record}, {}, now)), vm


def test_a_vm_whose_fetch_failed_is_a_failed_boot():
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import StartBackoff, VMEnd
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import SetPilotStatus

    decision, vm = _powered_off_view(heartbeat=False)
    (status,) = decision.of_type(SetPilotStatus)
    assert status.status == "Aborted" and "bootstrap fetch failed" in status.reason
    (delete,) = decision.of_type(DeleteVM)
    assert (delete.vm_name, delete.end) == (vm.name, VMEnd.BOOTSTRAP_FAILED)
    (backoff,) = decision.of_type(StartBackoff)
    assert backoff.profile == "el9" and "could not fetch its bootstrap" in backoff.reason


def test_a_510_after_a_heartbeat_is_no_failed_boot():
    """The boot script heartbeats only once it fetched: whoever sent 510 then, the pilot ran."""
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.StateMachine import VMEnd
    from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import SetPilotStatus

    decision, _ = _powered_off_view(heartbeat=True)
    (status,) = decision.of_type(SetPilotStatus)
    assert status.status == "Failed"
    assert decision.of_type(DeleteVM)[0].end is VMEnd.POWERED_OFF
