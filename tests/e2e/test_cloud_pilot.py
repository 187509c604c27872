"""End to end: a user's job runs in a VM that JenniferDIRAC's cloud CE booted, on a real DIRAC server.

Real parts: the loopback DIRAC 9.1 server (dev/loopback), DIRAC's own SiteDirector agent
(``dirac-agent WorkloadManagement/SiteDirector``) with a ``CEType = Cloud`` CE pointing at
LocalCloud (loopback OpenStack, real HTTP, openstacksdk), the CE's cloud-init user data run by
LocalCloud in a bubblewrap sandbox, DIRAC's pilot wrapper in it, the real JobAgent.
One stand-in: the pilot files served to the wrapper hold the project's small ``dirac-pilot.py``
(dev/loopback/pilot) because the real DIRACGrid pilot cannot be downloaded offline.
"""

from __future__ import annotations

import time

import pytest

from dev.loopback.cloudsite import (
    CE,
    attach_cloud,
    configure_cloud_site,
    start_cloud_agents,
    stop_cloud_agents,
)
from dev.loopback.jobs import job_jdl, wait_for

pytestmark = pytest.mark.slow

JDL = job_jdl("in-a-vm", "/bin/sh", "-c 'echo hello from $(hostname)'")


@pytest.fixture(scope="module")
def cloud_site(dirac_server, request):
    """LocalCloud booting VMs, configured in the running CS as the cloud CE of the loopback site,
    with DIRAC's SiteDirector, JenniferDIRAC's VMDirector and the VM endpoint serving it. The VMs'
    sandboxes (console and pilot logs) live beside the server's logs, kept with them on failure."""
    from JenniferLocalCloud import LocalCloud

    cloud = LocalCloud(boot=True, sandbox_root=dirac_server.roots.base / "vms")
    attach_cloud(dirac_server, cloud)
    cloud.start()
    port = configure_cloud_site(dirac_server, cloud)
    start_cloud_agents(dirac_server, port)
    try:
        yield cloud
    finally:
        # Other tests share the server: no SiteDirector may send their jobs to this cloud.
        stop_cloud_agents(dirac_server)
        cloud.stop()
        if request.session.testsfailed:
            print(f"\nLocalCloud VM consoles and pilot logs kept in {cloud.booter.root}")


def _pilots(dirac_server) -> list[tuple]:
    return dirac_server.mariadb.execute(
        "SELECT PilotJobReference, PilotStamp, Status, CurrentJobID FROM PilotAgents "
        "WHERE DestinationSite = %s",
        database="PilotAgentsDB",
        params=(CE,),
    )


def _vm_accounting_rows(dirac_server) -> int:
    """VirtualMachine records the DataStore holds (queued for bucketing or already bucketed)."""
    return sum(
        dirac_server.mariadb.execute(f"SELECT COUNT(*) FROM {table}", database="AccountingDB")[0][0]
        for table in ("ac_in_VirtualMachine", "ac_bucket_VirtualMachine")
    )


def _backoff(dirac_server) -> list[tuple]:
    return dirac_server.mariadb.execute(
        "SELECT Until, Failures, Reason FROM VMBackoff WHERE CE = %s AND Until > UTC_TIMESTAMP()",
        database="VMDB",
        params=(CE,),
    )


def _diagnostics(dirac_server, cloud) -> str:
    lines = [f"pilots: {_pilots(dirac_server)}", f"backoff: {_backoff(dirac_server)}"]
    for server in _servers(cloud):
        lines.append(f"VM {server.name} {server.status}")
        sandbox = cloud.booter.root / server.id
        for log in (sandbox / "console.log", sandbox / "fs/var/log/jdirac-pilot.log"):
            if log.exists():
                lines.append(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}")
    for agent in ("SiteDirector", "VMDirector", "VMEndpoint"):
        log = dirac_server.roots.logs / f"{agent}.log"
        lines.append(f"--- {agent}\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(lines)


def _wait(what: str, probe, timeout: float, dirac_server, cloud):
    try:
        return wait_for(what, probe, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_diagnostics(dirac_server, cloud)}") from None


def _servers(cloud) -> list:
    """A snapshot of LocalCloud's servers: its request threads add and remove them while a
    comprehension over the dict itself would iterate (RuntimeError: changed size)."""
    return list(cloud.compute.servers.values())


def _live_vms(cloud) -> list:
    return [s for s in _servers(cloud) if s.status != "DELETED"]


def test_job_runs_in_a_vm_booted_by_the_cloud_ce(dirac_server, cloud_site, tmp_path):
    started = time.monotonic()
    job_id = dirac_server.submit_job(JDL)

    def wait(what, probe, timeout):
        return _wait(what, probe, timeout, dirac_server, cloud_site)

    pilots = wait("a pilot submitted through the cloud CE", lambda: _pilots(dirac_server), 120)
    assert len(pilots) == 1, pilots
    ref, stamp, _, _ = pilots[0]
    assert ref.startswith(f"cloud://{CE}/")
    vm_name = ref.rsplit("/", 1)[1]
    servers = [s for s in _servers(cloud_site) if s.name == vm_name]
    assert len(servers) == 1
    vm = servers[0]

    dirac_server.wait_job_status(job_id, {"Done"}, timeout=300)
    output = dirac_server.get_output(job_id, tmp_path / "out")
    assert (output / "std.out").read_text().startswith("hello from ")

    # The pilot in the VM reported the reference and stamp that PilotAgentsDB holds.
    pilot_log = cloud_site.booter.root / vm.id / "fs/var/log/jdirac-pilot.log"
    assert f"pilot reference={ref} stamp={stamp} flavour=CLOUD" in pilot_log.read_text()

    # The VM powers off; the SiteDirector sees it, ends the pilot Done; the VM is deleted.
    wait("pilot Done", lambda: [p for p in _pilots(dirac_server) if p[2] == "Done"], 180)
    assert _pilots(dirac_server) == [(ref, stamp, "Done", job_id)]
    wait("VM deleted", lambda: vm.status == "DELETED" or vm.id not in cloud_site.compute.servers, 180)
    # The VMDirector accounts for the finished VM in DIRAC's accounting (VirtualMachine type).
    wait("VM accounting record", lambda: _vm_accounting_rows(dirac_server), 120)
    # The VM reported to the VM endpoint: logs, a heartbeat, its HEPiX shutdown message.
    logs = dirac_server.mariadb.execute(
        "SELECT Kind, Content FROM VMLogs WHERE VMName = %s", database="VMDB", params=(vm_name,)
    )
    assert {"boot", "pilot"} <= {kind for kind, _ in logs}, [k for k, _ in logs]
    pilot_upload = dict(logs)["pilot"].decode(errors="replace")
    assert f"pilot reference={ref} stamp={stamp}" in pilot_upload
    ((heartbeat, code, message),) = dirac_server.mariadb.execute(
        "SELECT LastHeartbeat, ShutdownCode, ShutdownMessage FROM VMs WHERE VMName = %s",
        database="VMDB",
        params=(vm_name,),
    )
    assert heartbeat is not None
    assert (code, message) == (200, "Intended work completed ok")
    print(
        f"\njob {job_id} in VM {vm_name}: submitted -> Done, pilot Done, VM deleted and accounted in "
        f"{time.monotonic() - started:.1f} s"
    )


def test_quota_refusal_backs_off_and_the_job_runs_once_quota_is_back(dirac_server, cloud_site):
    started = time.monotonic()

    def wait(what, probe, timeout):
        return _wait(what, probe, timeout, dirac_server, cloud_site)

    wait("no VM left from earlier", lambda: not _live_vms(cloud_site), 180)
    pilots_before = _pilots(dirac_server)
    cloud_site.faults.refuse_next_creates_for_quota(1000)
    job_id = dirac_server.submit_job(JDL)

    wait("a create refused for quota", lambda: cloud_site.faults.count("quota_refused"), 120)
    refused = cloud_site.faults.count("quota_refused")
    # The CE's S_ERROR makes DIRAC's SiteDirector sit the queue out (FailedQueueCycleFactor).
    site_director_log = dirac_server.roots.logs / "SiteDirector.log"
    offset = len(site_director_log.read_text(errors="replace"))
    wait(
        "the SiteDirector skipping the queue",
        lambda: "Queue failed recently" in site_director_log.read_text(errors="replace")[offset:],
        60,
    )
    # While backing off: no further create, no pilot record for a VM that never existed, no VM,
    # the job waits; VMDB keeps the refused create, and a full project is a pause (no CE backoff).
    assert cloud_site.faults.count("quota_refused") == refused
    assert _pilots(dirac_server) == pilots_before
    assert not _live_vms(cloud_site)
    assert dirac_server.job_status(job_id)["Status"] == "Waiting"
    # The CE records a refused create with its typed kind (VMDB FailureKind) and the cloud's words.
    refused_records = dirac_server.mariadb.execute(
        "SELECT FailureKind, DeleteReason FROM VMs WHERE CE = %s AND FailureKind <> ''",
        database="VMDB",
        params=(CE,),
    )
    assert refused_records, "no VM record of the refused creates"
    assert all(kind == "quota" and "quota" in why.lower() for kind, why in refused_records), refused_records
    assert not _backoff(dirac_server)

    # Quota is back: the next submission boots a VM that runs the job.
    cloud_site.faults.clear()
    dirac_server.wait_job_status(job_id, {"Done"}, timeout=300)
    wait(
        "pilot Done",
        lambda: [p for p in _pilots(dirac_server) if p not in pilots_before and p[2] == "Done"],
        180,
    )
    new = [p for p in _pilots(dirac_server) if p not in pilots_before]
    assert [p[2:] for p in new] == [("Done", job_id)], new
    print(
        f"\njob {job_id}: {refused} create(s) refused for quota, queue backed off, then Done in "
        f"{time.monotonic() - started:.1f} s"
    )


def test_a_vm_the_ce_deletes_first_is_accounted_at_once(dirac_server, cloud_site):
    """The race make demo lost: DIRAC's SiteDirector (cleanupPilots) deletes the powered-off VM
    before the VMDirector's cycle sees it. The VMDirector never sees that VM listed again; the
    record the CE closed lets it account the VM in its next cycle, not after LostPilotGrace (600 s)."""

    def wait(what, probe, timeout):
        return _wait(what, probe, timeout, dirac_server, cloud_site)

    wait("no VM left from earlier", lambda: not _live_vms(cloud_site), 180)
    pilots_before = _pilots(dirac_server)
    dirac_server.stop_component("VMDirector")  # the CE alone can delete the VM now
    try:
        job_id = dirac_server.submit_job(JDL)
        dirac_server.wait_job_status(job_id, {"Done"}, timeout=300)
        ((ref, *_),) = wait(
            "pilot Done",
            lambda: [p for p in _pilots(dirac_server) if p not in pilots_before and p[2] == "Done"],
            180,
        )
        vm_name = ref.rsplit("/", 1)[1]
        wait("the VM deleted by the CE", lambda: not _live_vms(cloud_site), 180)
        ((reason, accounted),) = dirac_server.mariadb.execute(
            "SELECT DeleteReason, Accounted FROM VMs WHERE VMName = %s AND Deleted IS NOT NULL",
            database="VMDB",
            params=(vm_name,),
        )
        assert (reason, accounted) == ("stopped VM of a final pilot", 0)
    finally:
        dirac_server.start_component("VMDirector", ["dirac-agent", "WorkloadManagement/VMDirector"])
    wait(
        "VM accounted by the VMDirector",
        lambda: dirac_server.mariadb.execute(
            "SELECT Accounted FROM VMs WHERE VMName = %s AND Accounted = 1",
            database="VMDB",
            params=(vm_name,),
        ),
        120,
    )
