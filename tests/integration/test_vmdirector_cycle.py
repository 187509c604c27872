"""Real VMDirector cycles: `dirac-agent WorkloadManagement/VMDirector -o MaxCycles=1` against
LocalCloud (real HTTP, openstacksdk) and MariaDB (DIRAC's PilotAgentsDB schema + VMDB).

dirac-agent exits 0 even when a cycle fails, so every run is judged by the agent's own log lines
and by the state it leaves in the cloud and the databases.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from pathlib import Path

import pytest
from agent_run import run_agent_once

from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference

INSTALLATION = "JenniferTest"
CE = "cloud.director.test"
DOWN_CE = "down.director.test"
SITE = "CLOUD.Director.test"
VO = "testvo"
PILOT_SQL = (
    Path(__import__("DIRAC").__file__).parent / "WorkloadManagementSystem" / "DB" / "PilotAgentsDB.sql"
)


# --- the world: cloud VMs, pilot records, VM records -----------------------------------------
class World:
    def __init__(self, cloud, mariadb, vmdb, tmp_path):
        self.cloud, self.mariadb, self.vmdb, self.tmp = cloud, mariadb, vmdb, tmp_path
        self.pilot_db = "PilotAgentsDB_" + uuid.uuid4().hex[:12]
        sql = tmp_path / "PilotAgentsDB.sql"
        sql.write_text(PILOT_SQL.read_text().replace("USE PilotAgentsDB;", f"USE {self.pilot_db};"))
        mariadb.create_database(self.pilot_db, sql)
        self.apel_dir = tmp_path / "apel"
        self.root = tmp_path / "root"
        self.root.mkdir()
        self.auth = tmp_path / "cloud.auth"
        creds = cloud.credentials
        self.auth.write_text(f"[DEFAULT]\nkey = {creds.username}\nsecret = {creds.password}\n")
        os.chmod(self.auth, 0o600)
        self.names: dict[str, str] = {}  # role -> VM name
        self.ids: dict[str, str] = {}  # role -> cloud id

    def close(self):
        self.mariadb.drop_database(self.pilot_db)

    def ce_parameters(self, ce=CE, auth_url=None):
        return {
            "CEType": "Cloud",
            "CloudType": "OPENSTACK",
            "Driver_ex_force_auth_url": auth_url or self.cloud.base_url + "/identity",
            "Driver_ex_force_auth_version": "3.x_password",
            "Driver_ex_tenant_name": self.cloud.credentials.project_name,
            "CloudAuth": str(self.auth),
            "Instance_Image": "name:EL9-x86_64",
            "Instance_Flavor": "name:m1.small",
            "Instance_Networks": "name:private",
            "InstallationName": INSTALLATION,
            "Site": SITE,
            "Community": VO,
            "HTTPTimeout": "5",
            "HS06PerCore": "12.5",
            "ApelPublish": "Jobs",
            "MaxTotalJobs": "100",
            "MaxWaitingJobs": "50",
        }

    def cfg(self, extra_ces=(), queues=None):
        info = self.mariadb
        main = (CE, self.ce_parameters(), queues)
        ces = "".join(self._ce_cfg(*ce) for ce in [main, *((name, params, None) for name, params in extra_ces)])
        return f"""
DIRAC
{{
  Security
  {{
    UseServerCertificate = no
  }}
}}
LocalSite
{{
  Site = DIRAC.Director.test
}}
Systems
{{
  Databases
  {{
    User = {info.user}
    Password = {info.password}
    Host = {info.host}
    Port = {info.port}
  }}
  WorkloadManagement
  {{
    Databases
    {{
      VMDB
      {{
        DBName = {self.vmdb.dbname}
      }}
      PilotAgentsDB
      {{
        DBName = {self.pilot_db}
      }}
    }}
    Agents
    {{
      VMDirector
      {{
        PollingTime = 60
        BootTimeout = 600
        MaxLifetime = 86400
        ZombieGrace = 300
        OrphanGrace = 300
        LostPilotGrace = 120
        FizzleSeconds = 600
        BackoffSeconds = 1800
        ApelDirectory = {self.apel_dir}
        DIRACAccounting = False
      }}
    }}
  }}
}}
Resources
{{
  Sites
  {{
    CLOUD
    {{
      {SITE}
      {{
        CEs
        {{
{ces}
        }}
      }}
    }}
  }}
}}
"""

    @staticmethod
    def _ce_cfg(name, params, queues=None):
        options = "\n".join(f"            {k} = {v}" for k, v in params.items())
        lines = [(12, "Queues"), (12, "{")]
        for queue, queue_options in (queues or {"default": {}}).items():
            lines += [(14, queue), (14, "{"), *((16, f"{k} = {v}") for k, v in queue_options.items()), (14, "}")]
        lines.append((12, "}"))
        queues = "".join(f"{' ' * indent}{text}\n" for indent, text in lines)
        return f"          {name}\n          {{\n{options}\n{queues}          }}\n"

    # --- seeding -------------------------------------------------------------------------------
    def add_vm(
        self,
        role,
        status,
        age,
        installation=INSTALLATION,
        fault=None,
        record=True,
        started_after=None,
        pilot=None,
        pilot_age=None,
        queue="",
        ce=CE,
        cloud=None,
    ):
        cloud = cloud or self.cloud
        name = make_vm_name()
        owner = OwnerTags(installation=installation, ce=ce, vo=VO, site=SITE, queue=queue)
        created = cloud.clock.now() - age
        server = cloud.compute.add_server(
            name,
            cloud.project_id,
            status=status,
            metadata=owner.to_metadata(),
            created=created,
            fault=fault,
        )
        if status == "BUILD":
            server.stuck = True  # LocalCloud would otherwise finish the build at its next tick
        self.names[role], self.ids[role] = name, server.id
        if record:
            created_dt = dt.datetime.fromtimestamp(created, dt.UTC)
            rec = {
                "vm_name": name,
                "vm_id": server.id,
                "ce": ce,
                "site": SITE,
                "vo": VO,
                "profile": "",
                "pilot_reference": pilot_reference(ce, name),
                "stamp": uuid.uuid4().hex,
                "flavor": "m1.small",
                "cores": 1,
                "ram_mb": 2048,
                "created": created_dt,
            }
            assert self.vmdb.db.recordVMs([rec])["OK"]
            if started_after is not None:
                started = created_dt + dt.timedelta(seconds=started_after)
                assert self.vmdb.db.setVMStates({name: {"state": "ACTIVE", "started": started}})["OK"]
        if pilot:
            self.add_pilot(name, pilot, age if pilot_age is None else pilot_age, submitted_age=age, ce=ce)
        return server

    def add_pilot(self, vm_name, status, update_age, submitted_age, ce=CE):
        ref = pilot_reference(ce, vm_name)
        self.mariadb.execute(
            "INSERT INTO PilotAgents (PilotJobReference, VO, GridType, DestinationSite, GridSite, Status, "
            "SubmissionTime, LastUpdateTime, PilotStamp) VALUES "
            f"('{ref}', '{VO}', 'Cloud', '{ce}', '{SITE}', '{status}', "
            f"UTC_TIMESTAMP() - INTERVAL {int(submitted_age)} SECOND, "
            f"UTC_TIMESTAMP() - INTERVAL {int(update_age)} SECOND, '{uuid.uuid4().hex}')",
            database=self.pilot_db,
        )
        return ref

    # --- reading back ------------------------------------------------------------------------
    def pilot(self, role_or_name):
        name = self.names.get(role_or_name, role_or_name)
        rows = self.mariadb.execute(
            "SELECT Status, StatusReason FROM PilotAgents "
            f"WHERE PilotJobReference = '{pilot_reference(CE, name)}'",
            database=self.pilot_db,
        )
        return rows[0] if rows else None

    def servers(self):
        """The servers neither deleted nor being deleted (Nova lists those for a while)."""
        return {
            s.name: s for s in self.cloud.compute.servers.values()
            if s.status != "DELETED" and s.task_state != "deleting"
        }

    def record(self, role):
        (rec,) = self.vmdb.db.getVMs(names=[self.names[role]])["Value"]
        return rec

    def apel_records(self):
        from apel_testkit import records_of

        if not self.apel_dir.exists():
            return []
        return records_of(str(self.apel_dir))

    # --- running the agent -------------------------------------------------------------------
    def run_agent(self, extra_ces=(), queues=None, cycles=1):
        cfg = self.tmp / "agent.cfg"
        text = self.cfg(extra_ces, queues) if queues else self.cfg(extra_ces)
        if cycles > 1:
            text = text.replace("PollingTime = 60", "PollingTime = 1")
        cfg.write_text(text)
        code, out = run_agent_once("WorkloadManagement/VMDirector", cfg, self.root, timeout=180, cycles=cycles)
        assert code == 0, out
        assert "VMDirector cycle done" in out, out
        assert "Cycle was successful" in out, out
        assert self.mariadb.password not in out and self.cloud.credentials.password not in out
        return out


@pytest.fixture
def world(local_cloud, mariadb, vmdb, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    # VMStateClient keeps one VMDB per process; each test has its own database.
    client_module._db = None
    w = World(local_cloud, mariadb, vmdb, tmp_path)
    yield w
    w.close()
    client_module._db = None


def ce_line(out, ce=CE):
    lines = [line for line in out.splitlines() if "VMDirector CE" in line and f" {ce}:" in line]
    assert lines, out
    return lines[-1]


def test_one_cycle_cleans_the_fleet_and_accounts_it(world, local_cloud):
    hour = 3600
    world.add_vm("healthy", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60)
    world.add_vm("stuck", "BUILD", 2 * hour, pilot="Submitted")
    world.add_vm(
        "errored", "ERROR", 1800, fault={"code": 500, "message": "No valid host was found"}, pilot="Submitted"
    )
    world.add_vm("stopped", "SHUTOFF", 3 * hour, started_after=60, pilot="Running", pilot_age=600)
    world.add_vm("over_lifetime", "ACTIVE", 2 * 86400, started_after=120, pilot="Running", pilot_age=60)
    world.add_vm("zombie", "ACTIVE", hour, started_after=60, pilot="Done", pilot_age=1800)
    world.add_vm("fizzled", "SHUTOFF", 200, pilot="Submitted", pilot_age=100)
    world.add_vm("orphan", "ACTIVE", 2 * hour, record=False)
    world.add_vm("foreign", "SHUTOFF", 30 * 86400, installation="SomeoneElse", record=False)
    lost = world.add_pilot(make_vm_name(), "Running", update_age=hour, submitted_age=2 * hour)
    local_cloud.counters.reset()

    out = world.run_agent()

    # One listing for the CE; one DELETE per deleted VM (Nova has no bulk delete); nothing else.
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 1
    assert local_cloud.counters.get("compute", "DELETE", "/v2.1/servers/<server_id>") == 6
    # the listing (+ version discovery), and for accounting the flavor's properties (benchmark),
    # read once a day: flavor lookup + its extra specs
    assert local_cloud.counters.total("compute", "GET") <= 4
    assert local_cloud.counters.get("compute", "GET", "/v2.1/flavors/<flavor_id>/os-extra_specs") == 1

    servers = world.servers()
    left = {role for role, name in world.names.items() if name in servers}
    assert left == {"healthy", "orphan", "foreign"}, (
        left,
        {n: s.status for n, s in servers.items()},
        world.names,
    )
    assert "6 deleted" in ce_line(out)

    # Final pilot statuses, with the cloud's fault as the reason where there is one.
    assert world.pilot("stuck")[0] == "Aborted"
    assert world.pilot("errored") == ("Aborted", "cloud error: No valid host was found")
    assert world.pilot("stopped")[0] == "Done"
    assert world.pilot("over_lifetime")[0] == "Deleted"
    assert world.pilot("zombie")[0] == "Done"  # already final: left as it was
    assert world.pilot("healthy")[0] == "Running"
    (status,) = world.mariadb.execute(
        f"SELECT Status FROM PilotAgents WHERE PilotJobReference = '{lost}'", database=world.pilot_db
    )[0]
    assert status == "Deleted"

    # Backoff recorded (never-booted, errored and fizzled VMs), and the CE submits nothing.
    backoff = world.vmdb.db.getBackoff(CE, "")["Value"]
    assert backoff and backoff["active"]
    assert (
        "never booted" in backoff["reason"] or "ERROR" in backoff["reason"] or "fizzled" in backoff["reason"]
    )
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    params = world.ce_parameters()
    params.pop("CEType")
    ce = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE, ceParametersDict=params)["Value"]
    try:
        available = ce.available()
        assert available["OK"], available
        assert available["Value"] == 0
        world.vmdb.db.clearBackoff(CE, "")
        assert ce.available()["Value"] > 0  # the backoff, not something else, held it at 0
    finally:
        ce.shutdown()

    # Every VM that ended is marked deleted and accounted; APEL records for those that ran.
    for role in ("stuck", "errored", "stopped", "over_lifetime", "zombie", "fizzled"):
        rec = world.record(role)
        assert rec["deleted"] is not None and rec["accounted"], (role, rec)
    assert not world.record("healthy")["accounted"]
    apel = {r["MachineName"]: r for r in world.apel_records()}
    assert set(apel) == {world.names[r] for r in ("stopped", "over_lifetime", "zombie")}
    stopped = apel[world.names["stopped"]]
    rec = world.record("stopped")
    expected_wall = int((rec["ended"] - rec["started"]).total_seconds())
    assert int(stopped["WallDuration"]) == expected_wall
    assert abs(expected_wall - (3 * 3600 - 60)) <= 5  # started 60 s after creation, ended now
    assert stopped["Processors"] == "1" and stopped["ServiceLevel"] == "12.5"
    assert stopped["LocalJobId"] == world.ids["stopped"] and stopped["VO"] == VO
    assert int(stopped["EndTime"]) - int(stopped["StartTime"]) == expected_wall

    # Second cycle: the orphan has now been seen twice and is deleted; the rest is stable.
    out = world.run_agent()
    servers = world.servers()
    assert world.names["orphan"] not in servers
    assert world.names["healthy"] in servers and world.names["foreign"] in servers
    assert "1 deleted" in ce_line(out)
    assert len(world.apel_records()) == 3  # nothing accounted twice


def test_faults_during_cycles_leak_nothing_and_lose_nothing(world, local_cloud):
    world.add_vm("stopped", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600)
    world.add_vm("errored", "ERROR", 1800, fault="No valid host was found", pilot="Submitted")
    world.add_vm("zombie", "ACTIVE", 3600, started_after=60, pilot="Done", pilot_age=1800)

    # 1. The listing fails: the CE is skipped, nothing is decided, nothing changes.
    rule = local_cloud.faults.http_error(503, service="compute", method="GET", times=None)
    out = world.run_agent()
    assert "skipped (listing failed" in ce_line(out)
    assert len(world.servers()) == 3
    assert world.pilot("stopped")[0] == "Running" and world.pilot("errored")[0] == "Submitted"
    assert world.vmdb.db.getBackoff(CE, "")["Value"] is None
    local_cloud.faults.clear()
    del rule

    # 2. Deletes fail: pilot statuses are recorded first, the VMs stay listed and unaccounted.
    local_cloud.faults.http_error(500, service="compute", method="DELETE", times=None)
    out = world.run_agent()
    assert "0 deleted, 3 delete failures" in ce_line(out)
    assert len(world.servers()) == 3
    assert world.pilot("stopped")[0] == "Done" and world.pilot("errored")[0] == "Aborted"
    for role in ("stopped", "errored", "zombie"):
        assert world.record(role)["deleted"] is None and not world.record(role)["accounted"]
    assert world.apel_records() == []
    local_cloud.faults.clear()

    # 3. The cloud works again: the next cycle finishes the job, each VM accounted once.
    out = world.run_agent()
    assert "3 deleted, 0 delete failures" in ce_line(out)
    assert world.servers() == {}
    for role in ("stopped", "errored", "zombie"):
        assert world.record(role)["deleted"] is not None and world.record(role)["accounted"]
    assert sorted(r["MachineName"] for r in world.apel_records()) == sorted(
        [world.names["stopped"], world.names["zombie"]]
    )
    out = world.run_agent()
    assert "0 deleted" in ce_line(out) and len(world.apel_records()) == 2


def test_one_clouds_outage_skips_that_ce_only(world, local_cloud):
    world.add_vm("stopped", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600)
    down = world.ce_parameters(DOWN_CE, auth_url="http://127.0.0.1:9/identity")
    out = world.run_agent(extra_ces=[(DOWN_CE, down)])
    assert "skipped" in ce_line(out, DOWN_CE)
    assert "1 deleted" in ce_line(out, CE)
    assert world.servers() == {}


def test_heartbeats_probe_and_lost_pilots(world, local_cloud):
    now = dt.datetime.now(dt.UTC)
    silent = world.add_vm("silent", "ACTIVE", 7200, started_after=60, pilot="Running", pilot_age=60)
    talking = world.add_vm("talking", "ACTIVE", 7200, started_after=60, pilot="Running", pilot_age=60)
    assert world.vmdb.db.addHeartbeat(world.names["silent"], now - dt.timedelta(seconds=4000))["OK"]
    assert world.vmdb.db.addHeartbeat(world.names["talking"], now - dt.timedelta(seconds=60))["OK"]
    # A backoff that ended 1000 s ago, and a probe VM created after it that has run 700 s.
    assert world.vmdb.db.setBackoff(CE, "", now - dt.timedelta(seconds=1000), "earlier failures")["OK"]
    probe = world.add_vm("probe", "ACTIVE", 800, started_after=100, pilot="Running", pilot_age=60)
    probe.launched_at = probe.created + 100
    lost = world.add_pilot(make_vm_name(), "Submitted", update_age=600, submitted_age=600)
    del silent, talking

    out = world.run_agent()

    assert set(world.servers()) == {world.names["talking"], world.names["probe"]}, ce_line(out)
    assert world.pilot("silent") == ("Failed", "no heartbeat for more than 3600 s")
    assert world.pilot("talking")[0] == "Running"
    assert world.vmdb.db.getBackoff(CE, "")["Value"] is None  # the probe passed the fizzle time
    assert "Backoff over" in out
    (status,) = world.mariadb.execute(
        f"SELECT Status FROM PilotAgents WHERE PilotJobReference = '{lost}'", database=world.pilot_db
    )[0]
    assert status == "Aborted"


def test_dry_run_changes_nothing(world, local_cloud):
    world.add_vm("stopped", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600)
    world.add_vm("errored", "ERROR", 1800, fault="No valid host was found", pilot="Submitted")
    cfg_text = world.cfg
    world.cfg = lambda extra_ces=(): cfg_text(extra_ces).replace(
        "DIRACAccounting = False", "DIRACAccounting = False\n        DryRun = True"
    )
    out = world.run_agent()
    assert "(dry run)" in out and "Would apply" in out
    assert len(world.servers()) == 2
    assert world.pilot("stopped")[0] == "Running" and world.pilot("errored")[0] == "Submitted"
    assert world.vmdb.db.getBackoff(CE, "")["Value"] is None
    assert not world.record("stopped")["accounted"]


@pytest.mark.parametrize(
    "option,served",
    [
        ("VO = othervo", False),
        (f"CE = {DOWN_CE}", False),
        ("Site = CLOUD.Other.test", False),
        (f"VO = othervo, {VO}", True),
    ],
)
def test_filters_select_the_ces_served(world, local_cloud, option, served):
    world.add_vm("stopped", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600)
    cfg_text = world.cfg
    world.cfg = lambda extra_ces=(): cfg_text(extra_ces).replace(
        "DIRACAccounting = False", f"DIRACAccounting = False\n        {option}"
    )
    out = world.run_agent()
    if served:
        assert "VMDirector cycle done 1 CEs" in out and world.servers() == {}
    else:
        assert "VMDirector cycle done 0 CEs" in out
        assert len(world.servers()) == 1 and world.pilot("stopped")[0] == "Running"


@pytest.mark.parametrize("status, message, kind", [
    (400, "Invalid key_name provided.", "configuration"),
    (403, "Maximum number of metadata items exceeds 128", "configuration"),
    (403, "Quota exceeded for cores: Requested 1, but already used 20 of 20 cores", "quota"),
])
def test_failed_create_backs_off_as_its_kind_says(world, local_cloud, tmp_path, status, message, kind):
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    params = world.ce_parameters()
    params.pop("CEType")
    ce = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE, ceParametersDict=params)["Value"]
    ce.retryDelay = 0.0
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text("#!/bin/bash\necho pilot\n")
    try:
        local_cloud.faults.http_error(status, message=message, service="compute", method="POST",
                                      path="/v2.1/servers", times=None)
        submitted = ce.submitJob(str(wrapper), "", 1)
        assert not submitted["OK"], submitted
        local_cloud.faults.clear()
        (record,) = world.vmdb.db.getVMs(ce=CE)["Value"]
        assert record["failure_kind"] == kind and message in record["delete_reason"]
        assert ce.available()["Value"] > 0  # the CE alone does not back off

        out = world.run_agent()

        backoff = world.vmdb.db.getBackoff(CE, "")["Value"]
        assert world.vmdb.db.getVMs(ce=CE)["Value"][0]["accounted"]  # handled: counted once
        if kind == "quota":  # a full project is a pause, whatever the text
            assert backoff is None, ce_line(out)
            assert ce.available()["Value"] > 0
        else:
            assert backoff and backoff["active"] and f"not created ({kind})" in backoff["reason"], ce_line(out)
            assert ce.available()["Value"] == 0
        assert world.servers() == {}
    finally:
        ce.shutdown()


def test_each_queue_s_options_apply_to_its_vms(world, local_cloud):
    # the agent's MaxLifetime (a day) is the CE level; the queues override it
    queues = {"long": {"MaxLifetime": 3 * 86400}, "short": {"MaxLifetime": 3600}}
    for queue in ("long", "short", ""):
        world.add_vm(queue or "untagged", "ACTIVE", 2 * 3600, started_after=30, pilot="Running",
                     pilot_age=60, queue=queue)
    world.add_vm("old-untagged", "ACTIVE", 2 * 86400, started_after=30, pilot="Running", pilot_age=60)
    world.add_vm("old-long", "ACTIVE", 2 * 86400, started_after=30, pilot="Running", pilot_age=60, queue="long")

    out = world.run_agent(queues=queues)

    left = set(world.servers())
    assert left == {world.names[r] for r in ("long", "untagged", "old-long")}, ce_line(out)
    assert world.pilot("short")[0] == "Deleted" and "maximum lifetime of 3600" in world.pilot("short")[1]
    assert world.pilot("old-untagged")[0] == "Deleted"


def test_a_large_fleet_takes_one_listing(world, local_cloud):
    """500 owned VMs (400 running, 100 powered off) and 200 foreign ones: one cycle."""
    running, stopped, foreign = 400, 100, 200
    now = local_cloud.clock.now()
    owner = OwnerTags(installation=INSTALLATION, ce=CE, vo=VO, site=SITE).to_metadata()
    other = OwnerTags(installation="SomeoneElse", ce=CE).to_metadata()
    names = {}
    for i in range(running + stopped + foreign):
        name = make_vm_name()
        status = "ACTIVE" if i < running else "SHUTOFF" if i < running + stopped else "ACTIVE"
        local_cloud.compute.add_server(
            name,
            local_cloud.project_id,
            status=status,
            created=now - 7200,
            metadata=owner if i < running + stopped else other,
        )
        names[name] = status
    rows = [
        (pilot_reference(CE, n), VO, "Cloud", CE, "Running", uuid.uuid4().hex)
        for n in list(names)[: running + stopped]
    ]
    conn = world.mariadb.connect(world.pilot_db)
    try:
        conn.cursor().executemany(
            "INSERT INTO PilotAgents (PilotJobReference, VO, GridType, DestinationSite, Status, "
            "SubmissionTime, "
            "LastUpdateTime, PilotStamp) VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP() - INTERVAL 7200 SECOND, "
            "UTC_TIMESTAMP() - INTERVAL 60 SECOND, %s)",
            rows,
        )
        conn.commit()
    finally:
        conn.close()
    local_cloud.counters.reset()

    start = time.monotonic()
    out = world.run_agent()
    elapsed = time.monotonic() - start

    assert f"{running + stopped} VMs, {stopped} deleted, 0 delete failures" in ce_line(out)
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") <= 2  # paginated at most once
    left = world.servers()
    assert (
        sum(1 for n in left if names[n] == "ACTIVE") == running + foreign and len(left) == running + foreign
    )
    took = [line for line in out.splitlines() if "Cycle took" in line]
    print(
        f"\n700 VMs in the project, {stopped} deleted: dirac-agent run {elapsed:.1f} s; "
        f"{took[-1].split('NOTICE:')[-1].strip()}"
    )


OTHER_CE = "cloud2.director.test"


def test_ces_of_one_project_share_one_listing_per_cycle(world, local_cloud):
    """Two CEs in one project: one listing (then incremental refreshes) per cycle, and the
    flavor's properties read once for both CEs' accounting."""
    for ce in (CE, OTHER_CE):
        world.add_vm(f"healthy-{ce}", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60, ce=ce)
        world.add_vm(f"stopped-{ce}", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600, ce=ce)
    other = [(OTHER_CE, world.ce_parameters(OTHER_CE))]
    local_cloud.counters.reset()

    out = world.run_agent(extra_ces=other)  # a first cycle, both CEs accounting an ended VM

    assert "2 VMs, 1 deleted" in ce_line(out, CE) and "2 VMs, 1 deleted" in ce_line(out, OTHER_CE)
    # both CEs account at once: their APEL sync counts written one after the other (an overlap
    # failed one CE's accounting, its VM accounted again by the next process, the GETs below)
    assert "1 accounted" in ce_line(out, CE) and "1 accounted" in ce_line(out, OTHER_CE), out
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 1, local_cloud.counters
    assert local_cloud.counters.get("compute", "GET", "/v2.1/flavors/<flavor_id>/os-extra_specs") == 1
    assert len(world.apel_records()) == 2

    # steady: nothing to delete or account; a new process lists in full, then incrementally
    local_cloud.counters.reset()
    out = world.run_agent(extra_ces=other)
    first = local_cloud.counters.total("compute", "GET")
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 1, local_cloud.counters
    assert first <= 2, local_cloud.counters  # the listing (+ version discovery)
    local_cloud.counters.reset()
    out = world.run_agent(extra_ces=other, cycles=3)
    assert out.count("VMDirector cycle done 2 CEs, 0 skipped") == 3, out
    listings = local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail")
    assert listings == 3, local_cloud.counters  # one per cycle for the two CEs
    steady = local_cloud.counters.total("compute", "GET") - first
    assert steady <= 2 * 2, local_cloud.counters  # at most 2 per steady cycle
    print(f"\n2 CEs, one project: first cycle {first} compute GETs, 2 steady cycles {steady}")
    assert {world.names[f"healthy-{ce}"] for ce in (CE, OTHER_CE)} == set(world.servers())


def test_after_a_cycle_deleted_vms_the_next_refresh_names_them_by_id_only(world, local_cloud):
    """Six powered-off VMs deleted by the first cycle: the second cycle's refresh asks for the
    changed servers' ids (brief listing) and the details of those in a listed state only."""
    for i in range(6):
        world.add_vm(f"stopped-{i}", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600)
    world.add_vm("healthy", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60)
    local_cloud.counters.reset()

    out = world.run_agent(cycles=2)

    assert out.count("VMDirector cycle done 1 CEs, 0 skipped, 6 VMs deleted") == 1, out
    assert out.count("VMDirector cycle done 1 CEs, 0 skipped, 0 VMs deleted") == 1, out
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers") == 1, local_cloud.counters
    assert local_cloud.counters.get("compute", "GET", "/v2.1/servers/detail") == 2, local_cloud.counters
    assert set(world.servers()) == {world.names["healthy"]}
    assert all(world.record(f"stopped-{i}")["deleted"] is not None for i in range(6))
    assert world.record("healthy")["deleted"] is None


def test_ces_of_one_project_delete_at_once(world, local_cloud):
    """Two CEs of one project, one VM to delete each: the first DELETE the cloud receives is held
    until the second arrives, so the CEs' deletions overlap (served one after another, the other
    CE's DELETE would only come once the first was answered); both VMs deleted, records closed."""
    import threading

    second, overlapped, lock = threading.Event(), threading.Event(), threading.Lock()
    seen = []
    rules = local_cloud.faults.before_request

    def on_delete(service, method, template):
        if service == "compute" and method == "DELETE":
            with lock:
                seen.append(template)
                first = len(seen) == 1
            if not first:
                second.set()
            elif second.wait(60):
                overlapped.set()
        return rules(service, method, template)

    local_cloud.faults.before_request = on_delete
    for ce in (CE, OTHER_CE):
        world.add_vm(f"healthy-{ce}", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60, ce=ce)
        world.add_vm(f"stopped-{ce}", "SHUTOFF", 7200, started_after=60, pilot="Done", pilot_age=600, ce=ce)
    params = world.ce_parameters
    world.ce_parameters = lambda ce=CE, auth_url=None: dict(params(ce, auth_url), HTTPTimeout="90")

    out = world.run_agent(extra_ces=[(OTHER_CE, world.ce_parameters(OTHER_CE))])

    assert overlapped.is_set(), out
    assert len(seen) == 2
    assert "2 VMs, 1 deleted" in ce_line(out, CE) and "2 VMs, 1 deleted" in ce_line(out, OTHER_CE)
    for ce in (CE, OTHER_CE):
        assert world.vmdb.db.getVMs(names=[world.names[f"stopped-{ce}"]])["Value"][0]["deleted"] is not None
    assert {world.names[f"healthy-{ce}"] for ce in (CE, OTHER_CE)} == set(world.servers())


def test_ces_of_different_projects_are_handled_at_once(world, local_cloud, tmp_path):
    """Project A's listing is held until project B's cloud receives the DELETE of B's cycle:
    B's CE is served while A's listing is under way (served one after another, B's DELETE would
    only come once A's listing was answered)."""
    import threading

    from JenniferLocalCloud import LocalCloud

    with LocalCloud() as cloud_b:
        deleted_on_b, b_while_a_listed = threading.Event(), threading.Event()
        b_rules = cloud_b.faults.before_request
        a_rules = local_cloud.faults.before_request

        def on_b(service, method, template):
            if service == "compute" and method == "DELETE":
                deleted_on_b.set()
            return b_rules(service, method, template)

        def on_a(service, method, template):
            if (service, method, template) == ("compute", "GET", "/v2.1/servers/detail"):
                if deleted_on_b.wait(60):
                    b_while_a_listed.set()
            return a_rules(service, method, template)

        cloud_b.faults.before_request, local_cloud.faults.before_request = on_b, on_a
        world.add_vm("healthy", "ACTIVE", 600, started_after=30, pilot="Running", pilot_age=60)
        world.add_vm("stopped-b", "SHUTOFF", 7200, started_after=60, pilot="Running", pilot_age=600,
                     ce=OTHER_CE, cloud=cloud_b)
        auth_b = tmp_path / "cloud-b.auth"
        auth_b.write_text(f"[DEFAULT]\nkey = {cloud_b.credentials.username}\n"
                          f"secret = {cloud_b.credentials.password}\n")
        os.chmod(auth_b, 0o600)
        params = world.ce_parameters
        world.ce_parameters = lambda ce=CE, auth_url=None: dict(params(ce, auth_url), HTTPTimeout="90")
        other = dict(world.ce_parameters(OTHER_CE, auth_url=cloud_b.base_url + "/identity"),
                     CloudAuth=str(auth_b), Driver_ex_tenant_name=cloud_b.credentials.project_name)

        out = world.run_agent(extra_ces=[(OTHER_CE, other)])

        assert b_while_a_listed.is_set(), out  # B's work overlapped A's listing
        assert "1 VMs, 0 deleted" in ce_line(out, CE)
        assert "1 VMs, 1 deleted" in ce_line(out, OTHER_CE)
        assert world.pilot(world.names["stopped-b"]) is None  # its pilot is OTHER_CE's
        assert [s.name for s in cloud_b.compute.servers.values()
                if s.status != "DELETED" and s.task_state != "deleting"] == []
