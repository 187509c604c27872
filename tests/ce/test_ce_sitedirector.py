"""DIRAC's own SiteDirector drives our cloud CE against LocalCloud, with a real PilotAgentsDB.

The CE comes from the CS through getQueues / getQueuesResolved / ComputingElementFactory, as in
production. Only the SiteDirector's other services are patched at the edge (as DIRAC's own
Test_Agent_SiteDirector.py does): ProxyManager, ResourceStatus, the Matcher. The VMs boot: the
pilot wrapper DIRAC wrote runs in each LocalCloud sandbox, and the PILOT_UUID and
DIRAC_PILOT_STAMP it logs are compared with what PilotAgentsDB stored.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ce_testkit import CE_NAME, INSTALLATION, SITE, VO, live_servers, load_cs, write_cloud_auth
from DIRAC import S_OK
from waiting import wait_until as wait_for

QUEUE = f"{CE_NAME}_default"
PILOT_GROUP = f"{VO}_pilot"
PILOT_DN = "/DC=test/CN=pilot"


class Proxy:
    """A pilot proxy as the SiteDirector handles it (bundled into the wrapper, never used)."""

    def dumpAllToString(self):
        return S_OK("-----BEGIN CERTIFICATE-----\nnot a real proxy\n-----END CERTIFICATE-----\n")

    def getRemainingSecs(self):
        return S_OK(7 * 86400)


def site_cs(cloud, auth_file: str) -> dict:
    creds = cloud.credentials
    ce = {
        "CEType": "Cloud",
        "CloudType": "OPENSTACK",
        "Driver_ex_force_auth_url": f"{cloud.base_url}/identity",
        "Driver_ex_force_auth_version": "3.x_password",
        "Driver_ex_tenant_name": creds.project_name,
        "CloudAuth": auth_file,
        "Instance_Image": "name:EL9-x86_64",
        "Instance_Flavor": "name:m1.small",
        "Instance_Networks": "name:private",
        "InstallationName": INSTALLATION,
        "Queues": {"default": {"VO": VO, "MaxTotalJobs": 10, "MaxWaitingJobs": 5}},
    }
    return {
        "Registry": {
            "Users": {"pilot": {"DN": PILOT_DN}},
            "Groups": {PILOT_GROUP: {"Users": "pilot", "VO": VO, "Properties": "GenericPilot"}},
            "VO": {VO: {"VOAdmin": "pilot"}},
        },
        "Operations": {
            "Defaults": {
                "Pilot": {
                    "GenericPilotGroup": PILOT_GROUP,
                    "GenericPilotDN": PILOT_DN,
                    "pilotFileServer": "127.0.0.1:9",
                    "Extensions": "None",
                }
            }
        },
        "LocalSite": {"DisableAccounting": "True"},
        "Systems": {"WorkloadManagement": {"Agents": {"SiteDirector": {"VO": VO, "SendPilotAccounting": "False"}}}},
        "Resources": {"Sites": {"CLOUD": {SITE: {"VO": VO, "CEs": {CE_NAME: ce}}}}},
    }


@pytest.fixture
def pilot_agents_db(mariadb, monkeypatch, tmp_path, restore_cs):
    """DIRAC's PilotAgentsDB on the private MariaDB, installed as the process-wide instance."""
    import uuid

    import DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB as module

    dbname = "PilotAgentsDB_" + uuid.uuid4().hex[:10]
    schema = Path(module.__file__).with_suffix(".sql").read_text()
    sql = tmp_path / "PilotAgentsDB.sql"
    sql.write_text(schema.replace("USE PilotAgentsDB;", ""))
    mariadb.create_database(dbname, sql)
    load_cs({
        "Systems": {
            "Databases": {"User": mariadb.user, "Password": mariadb.password, "Host": mariadb.host,
                          "Port": mariadb.port},
            "WorkloadManagement": {"Databases": {"PilotAgentsDB": {"DBName": dbname}}},
        }
    })
    db = module.PilotAgentsDB()
    monkeypatch.setattr(module, "gPilotAgentsDB", db)
    try:
        yield db
    finally:
        mariadb.drop_database(dbname)


@pytest.fixture
def site_director(local_cloud, pilot_agents_db, tmp_path, monkeypatch):
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.ResourceStatusSystem.Client.ResourceStatus import ResourceStatus
    from DIRAC.ResourceStatusSystem.Client.SiteStatus import SiteStatus
    from DIRAC.WorkloadManagementSystem.Agent.SiteDirector import SiteDirector
    from DIRAC.WorkloadManagementSystem.Client.MatcherClient import MatcherClient

    creds = local_cloud.credentials
    auth_file = write_cloud_auth(tmp_path / "cloud.auth", creds.username, creds.password)
    load_cs(site_cs(local_cloud, auth_file))

    monkeypatch.setattr(SiteStatus, "getUsableSites", lambda self, *a, **k: S_OK([SITE]))
    monkeypatch.setattr(
        ResourceStatus, "getElementStatus",
        lambda self, names, *a, **k: S_OK({name: {"all": "Active"} for name in names}),
    )
    monkeypatch.setattr(gProxyManager, "downloadProxy", lambda *a, **k: S_OK(Proxy()))
    monkeypatch.setattr(gProxyManager, "getPilotProxyFromDIRACGroup", lambda *a, **k: S_OK(Proxy()))
    monkeypatch.setattr(gProxyManager, "userHasProxy", lambda *a, **k: S_OK(True))
    monkeypatch.setattr(
        MatcherClient, "getMatchingTaskQueues",
        lambda self, *a, **k: S_OK({1: {"Jobs": 3, "OwnerGroup": PILOT_GROUP}}),
    )

    sd = SiteDirector("WorkloadManagement/SiteDirector", "WorkloadManagement/SiteDirector")
    assert sd.initialize()["OK"]
    sd.workingDirectory = str(tmp_path)
    result = sd.beginExecution()
    assert result["OK"], result.get("Message")
    yield sd
    for queue in sd.queueDict.values():
        queue["CE"].shutdown()


def logged_environment(log_text: str) -> dict[str, str]:
    """NAME=value lines that DIRAC's pilot wrapper logs about its environment."""
    env = {}
    for name in ("PILOT_UUID", "DIRAC_PILOT_STAMP"):
        match = re.search(rf"\b{name}=(\S+)", log_text)
        if match:
            env[name] = match.group(1)
    return env


@pytest.mark.parametrize("local_cloud", [{"boot": True}], indirect=True)
def test_site_director_submits_monitors_and_pilots_see_their_reference(site_director, pilot_agents_db, local_cloud):
    sd = site_director
    from JenniferDIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement

    assert list(sd.queueDict) == [QUEUE]
    assert isinstance(sd.queueDict[QUEUE]["CE"], CloudComputingElement)

    result = sd._submitPilotsPerQueue(QUEUE)
    assert result["OK"], result.get("Message")
    assert result["Value"] == 3  # 3 waiting jobs, 5 waiting slots

    refs = pilot_agents_db.selectPilots({"DestinationSite": CE_NAME})["Value"]
    assert len(refs) == 3
    info = pilot_agents_db.getPilotInfo(refs)["Value"]
    servers = {s.name: s for s in live_servers(local_cloud)}
    assert {ref.rsplit("/", 1)[1] for ref in refs} == set(servers)
    for ref in refs:
        assert info[ref]["Status"] == "Submitted"
        assert info[ref]["GridType"] == "Cloud"
        assert re.fullmatch(r"[0-9a-f]{32}", info[ref]["PilotStamp"])

    # Every VM boots, runs DIRAC's pilot wrapper (which cannot reach a pilot file server here),
    # and powers off.
    wait_for(lambda: all(s.status == "SHUTOFF" for s in live_servers(local_cloud)), 120, "the VMs to power off")
    for ref in refs:
        server = servers[ref.rsplit("/", 1)[1]]
        sandbox = local_cloud.booter.sandbox(server.id)
        pilot_log = sandbox.fs / "var" / "log" / "jdirac-pilot.log"
        assert pilot_log.is_file(), sandbox.console.read_text()[-3000:]
        env = logged_environment(pilot_log.read_text())
        assert env == {"PILOT_UUID": ref, "DIRAC_PILOT_STAMP": info[ref]["PilotStamp"]}, pilot_log.read_text()[-3000:]

    # a later SiteDirector cycle: the listing held since the submission (it holds the new VMs,
    # as created) is older than ListingCacheSeconds by then
    from JenniferDIRAC.Resources.Cloud.sharedlisting import invalidate_all

    invalidate_all()
    assert sd.monitorPilots()["OK"]
    info = pilot_agents_db.getPilotInfo(refs)["Value"]
    assert {info[ref]["Status"] for ref in refs} == {"Done"}
    assert len(live_servers(local_cloud)) == 3  # cleanupPilots ran before the SiteDirector saw Done

    assert sd.monitorPilots()["OK"]
    assert live_servers(local_cloud) == []  # now the stopped VMs of final pilots are deleted
