"""A soak under seeded random faults: 3 CEs of one project on LocalCloud (real HTTP), real
PilotAgentsDB + VMDB on MariaDB. Each round is what DIRAC 9.1's SiteDirector.execute does, run
by DIRAC's own code over the three queues: ``submitPilots`` (per queue, in its thread pool:
``_setCredentials``, ``available``, ``submitJob``, the pilot records it writes) and
``monitorPilots`` (per queue: ``cleanupPilots``, the transient pilots it selects, ``getJobStatus``,
the statuses it writes); ProxyManager, ResourceStatus and the Matcher are patched at the edge
as in tests/ce/test_ce_sitedirector.py. Then pilots finish and power their VMs off, and a real
``dirac-agent WorkloadManagement/VMDirector`` cycle runs (a new agent process each time: every
cycle is a restart); then faults off and clean cycles. OrphanGrace is the integration world's
300 s: a VM whose create was uncertain must be adopted, not swept as an orphan. The invariants
are printed as figures and must all be 0.

Longer run: ``JDIRAC_SOAK_CYCLES=40 .venv/bin/pytest -p no:cacheprovider -q -s tests/soak``
(or ``--soak-cycles 40``); ``JDIRAC_SOAK_SEEDS=1,2,3`` picks the seeds.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest
from ce_testkit import load_cs
from DIRAC import S_OK
from test_ce_sitedirector import Proxy

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE

from JenniferDIRAC.Resources.Cloud.references import parse_reference, pilot_reference
from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module
from test_vmdirector_cycle import CE, SITE, VO, World, world  # noqa: F401 - world is a fixture

CES = (CE, "second.director.test", "third.director.test")
TRANSIENT = ("Submitted", "Waiting", "Scheduled", "Running", "Unknown")
SEEDS = [int(s) for s in os.environ.get("JDIRAC_SOAK_SEEDS", "11,12").split(",")]
CLEAN_CYCLES = 2
#: clean cycles at most, until no pilot waits for a VM that never came (its LostPilotGrace)
MAX_CLEAN_CYCLES = 12
#: seconds a pilot whose create was uncertain, its VM never listed, stays Submitted (VMDirector
#: and CE): short so that the run sees those pilots end; it hides nothing, the pilot and its
#: CREATE_UNCERTAIN record are right all along
LOST_PILOT_GRACE = 30
COMPUTE = {"service": "compute", "times": None}
SD_QUEUES = {f"{ce}_default": ce for ce in CES}  # the SiteDirector's names of the CEs' queues
#: the CE methods the SiteDirector calls; an exception out of one is counted
CE_METHODS = ("available", "submitJob", "cleanupPilots", "getJobStatus")
PILOT_GROUP, PILOT_DN = f"{VO}_pilot", "/DC=test/CN=pilot"


def _cycles(config) -> int:
    option = config.getoption("--soak-cycles", None)
    return option or int(os.environ.get("JDIRAC_SOAK_CYCLES", "4"))


def inject(faults, seed: int) -> None:
    """Seeded random faults on compute requests and VM fates (none on Keystone's catalog)."""
    faults.random_errors(0.04, seed=seed, **COMPUTE)
    faults.add("timeout", seconds=2.5, probability=0.02, seed=seed + 10, **COMPUTE)
    faults.add("drop", probability=0.02, seed=seed + 11, **COMPUTE)
    faults.add("expire_token", probability=0.02, seed=seed + 12, **COMPUTE)
    faults.add("lost_response", delay=2.5, probability=0.15, seed=seed + 13, method="POST",
               path="/v2.1/servers", **COMPUTE)
    # the listing after a lost create fails too (often the CE's lookup of the VM by name)
    faults.add("http_error", status=503, armed_by="lost_response", seed=seed + 15, method="GET",
               path="/v2.1/servers/detail", **COMPUTE)
    faults.add("latency", seconds=0.5, probability=0.3, seed=seed + 14, method="DELETE", **COMPUTE)
    faults.vm_fate_rate("error", 0.08, seed=seed + 20)
    faults.vm_fate_rate("stuck", 0.05, seed=seed + 21)
    faults.vm_fate_rate("quota_recheck", 0.04, seed=seed + 22)
    faults.vm_fate_rate("quota_refused", 0.04, seed=seed + 23)


class Soak:
    def __init__(self, world, cloud, vmdb, seed):
        self.world, self.cloud, self.vmdb = world, cloud, vmdb
        self.rng = random.Random(seed)
        self.returned: dict[str, str] = {}  # reference -> CE
        self.escaped: list[str] = []
        self.agent_logs: list[str] = []
        self.twins_after: set[str] = set()  # names with two live VMs after the last director cycle
        self.twins_surviving = 0  # ... and still after the next one (must be removed by then)
        config = world.cfg
        world.cfg = lambda *args, **kwargs: config(*args, **kwargs).replace(
            "LostPilotGrace = 120", f"LostPilotGrace = {LOST_PILOT_GRACE}")
        self.ces = {}
        self.sd = None
        self.sd_cycles = Counter()  # (submitPilots|monitorPilots, OK) of DIRAC's SiteDirector

    def site_director(self, sd):
        """DIRAC's SiteDirector drives the three CEs; its CE objects are watched for what
        submitJob returned (to check it was recorded) and for exceptions escaping a method."""
        self.sd = sd
        for queue, name in SD_QUEUES.items():
            ce = sd.queueDict[queue]["CE"]
            ce.retryDelay = 0.0
            for method in CE_METHODS:
                setattr(ce, method, self._watched(name, method, getattr(ce, method)))
            self.ces[name] = ce

    def _watched(self, name, method, call):
        def watched(*args, **kwargs):
            try:
                result = call(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - what the invariant counts
                self.escaped.append(f"{name}.{method}: {exc!r}")
                raise
            if method == "submitJob" and result["OK"]:
                self.returned.update((ref, name) for ref in result["Value"])
            return result

        return watched

    def pilots(self, ce):
        return dict(self.world.mariadb.execute(
            f"SELECT PilotJobReference, Status FROM PilotAgents WHERE DestinationSite = '{ce}'",
            database=self.world.pilot_db))

    def site_director_cycle(self):
        """SiteDirector.execute's two steps (both cycle factors are 1), each over the three
        queues in DIRAC's thread pool; a failed submission or status query under faults is
        S_ERROR for the SiteDirector too, which logs it and tries again next cycle."""
        for step in ("submitPilots", "monitorPilots"):
            try:
                result = getattr(self.sd, step)()
            except Exception as exc:  # noqa: BLE001 - a CE exception through DIRAC's futures
                self.escaped.append(f"SiteDirector.{step}: {exc!r}")
                continue
            self.sd_cycles[step, result["OK"]] += 1

    def waiting_for_a_vm(self) -> int:
        """Transient pilots whose VM is not listed (an uncertain create that never landed)."""
        live = {s.name for s in self.live()}
        return sum(1 for ce in CES for ref, status in self.pilots(ce).items()
                   if status in TRANSIENT and parse_reference(ref)[1] not in live)

    def pilots_finish(self):
        """Some running VMs' pilots end and power their VM off, as the pilot wrapper does."""
        for server in list(self.cloud.compute.servers.values()):
            if server.status == "ACTIVE" and self.rng.random() < 0.3:
                self.cloud.compute.set_state(server.id, "SHUTOFF")

    def director_cycle(self):
        out = self.world.run_agent(extra_ces=[(name, self.world.ce_parameters()) for name in CES[1:]])
        self.agent_logs.append(out)
        names = Counter(s.name for s in self.live() if s.metadata.get("jdirac-installation"))
        twins = {name for name, n in names.items() if n > 1}
        self.twins_surviving += len(twins & self.twins_after)
        self.twins_after = twins

    # --- invariants ---------------------------------------------------------------------------
    def live(self):
        return [s for s in self.cloud.compute.servers.values()
                if s.status != "DELETED" and s.task_state != "deleting"]

    def figures(self, foreign_ids, captured: str) -> dict[str, int]:
        pilots = {}
        for ce in CES:
            pilots.update(self.pilots(ce))
        owned = [s for s in self.live() if s.metadata.get("jdirac-installation")]
        owned = [s for s in owned if s.id not in foreign_ids]
        by_name = Counter(s.name for s in owned)
        live_names = set(by_name)
        refs_of = {s.name: pilot_reference(s.metadata.get("jdirac-ce", ""), s.name) for s in owned}
        records = {r["vm_name"]: r for ce in CES for r in self.vmdb.db.getVMs(ce=ce)["Value"]}
        secrets = [self.cloud.credentials.password, self.world.mariadb.password]
        logs = captured + "".join(self.agent_logs)
        apel = Counter(r.get("LocalJobId") for r in self.world.apel_records())
        self.details = {
            "leaked": [(s.name, s.status, pilots.get(refs_of[s.name]), records.get(s.name, {}).get("delete_reason"))
                       for s in owned if pilots.get(refs_of[s.name]) not in TRANSIENT],
            "transient, VM gone": [
                (ref, status, records.get(parse_reference(ref)[1], {}).get("cloud_state"),
                 records.get(parse_reference(ref)[1], {}).get("deleted"),
                 [(v.status, v.id) for v in self.cloud.compute.servers.values() if v.name == parse_reference(ref)[1]])
                for ref, status in pilots.items() if status in TRANSIENT and parse_reference(ref)[1] not in live_names],
            "unaccounted": [(r["vm_name"], r["delete_reason"], r["cloud_state"] if "cloud_state" in r else "")
                            for r in records.values()
                            if r["deleted"] is not None and r["vm_id"] and not r["accounted"]],
        }
        return {
            "leaked VMs": sum(1 for s in owned if pilots.get(refs_of[s.name]) not in TRANSIENT),
            "duplicate VMs": sum(n - 1 for n in by_name.values()),
            "twins left after the next director cycle": self.twins_surviving,
            "refs returned never recorded": sum(
                1 for ref in self.returned if ref not in pilots or parse_reference(ref)[1] not in records),
            "pilots transient with VM gone": sum(
                1 for ref, status in pilots.items() if status in TRANSIENT and parse_reference(ref)[1] not in live_names),
            "exceptions escaping a CE method": len(self.escaped),
            "other installation's VMs deleted": sum(1 for i in foreign_ids if i not in {s.id for s in self.live()}),
            "accounting records missing": sum(
                1 for r in records.values() if r["deleted"] is not None and r["vm_id"] and not r["accounted"]),
            "accounting records doubled": sum(n - 1 for n in apel.values() if n > 1),
            "secrets in captured logs": sum(logs.count(s) for s in secrets if s),
        }


def ce_params(world) -> dict:
    return {**world.ce_parameters(), "HTTPTimeout": "1.5", "MaxCreateAttempts": "2",
            "LostPilotGrace": str(LOST_PILOT_GRACE)}


def site_director_cs(world) -> dict:
    ce = {k: v for k, v in ce_params(world).items() if k not in ("MaxTotalJobs", "MaxWaitingJobs")}
    ce["Queues"] = {"default": {"VO": VO, "MaxTotalJobs": 100, "MaxWaitingJobs": 50}}
    db = world.mariadb
    return {
        "Registry": {
            "Users": {"pilot": {"DN": PILOT_DN}},
            "Groups": {PILOT_GROUP: {"Users": "pilot", "VO": VO, "Properties": "GenericPilot"}},
            "VO": {VO: {"VOAdmin": "pilot"}},
        },
        "Operations": {"Defaults": {"Pilot": {"GenericPilotGroup": PILOT_GROUP, "GenericPilotDN": PILOT_DN,
                                              "pilotFileServer": "127.0.0.1:9", "Extensions": "None"}}},
        "LocalSite": {"DisableAccounting": "True"},
        "Systems": {
            "Databases": {"User": db.user, "Password": db.password, "Host": db.host, "Port": db.port},
            "WorkloadManagement": {
                "Databases": {"PilotAgentsDB": {"DBName": world.pilot_db}},
                "Agents": {"SiteDirector": {"VO": VO, "SendPilotAccounting": "False"}},
            },
        },
        "Resources": {"Sites": {"CLOUD": {SITE: {"VO": VO, "CEs": {name: dict(ce) for name in CES}}}}},
    }


@pytest.fixture
def site_director(world, monkeypatch, tmp_path):
    """DIRAC's SiteDirector in this process, its CS the three CEs', PilotAgentsDB the world's."""
    import DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB as pilot_db_module
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.ResourceStatusSystem.Client.ResourceStatus import ResourceStatus
    from DIRAC.ResourceStatusSystem.Client.SiteStatus import SiteStatus
    from DIRAC.WorkloadManagementSystem.Agent.SiteDirector import SiteDirector
    from DIRAC.WorkloadManagementSystem.Client.MatcherClient import MatcherClient

    saved = gConfigurationData.localCFG.clone()
    load_cs(site_director_cs(world))
    monkeypatch.setattr(pilot_db_module, "gPilotAgentsDB", pilot_db_module.PilotAgentsDB())
    monkeypatch.setattr(SiteStatus, "getUsableSites", lambda self, *a, **k: S_OK([SITE]))
    monkeypatch.setattr(ResourceStatus, "getElementStatus",
                        lambda self, names, *a, **k: S_OK({name: {"all": "Active"} for name in names}))
    monkeypatch.setattr(gProxyManager, "downloadProxy", lambda *a, **k: S_OK(Proxy()))
    monkeypatch.setattr(gProxyManager, "getPilotProxyFromDIRACGroup", lambda *a, **k: S_OK(Proxy()))
    monkeypatch.setattr(gProxyManager, "userHasProxy", lambda *a, **k: S_OK(True))
    monkeypatch.setattr(MatcherClient, "getMatchingTaskQueues",
                        lambda self, *a, **k: S_OK({1: {"Jobs": 4, "OwnerGroup": PILOT_GROUP}}))
    sd = SiteDirector("WorkloadManagement/SiteDirector", "WorkloadManagement/SiteDirector")
    assert sd.initialize()["OK"]
    sd.workingDirectory = str(tmp_path)
    result = sd.beginExecution()
    assert result["OK"], result.get("Message")
    assert sorted(sd.queueDict) == sorted(SD_QUEUES)
    yield sd
    gConfigurationData.localCFG = saved
    gConfigurationData.sync()


@pytest.mark.parametrize("seed", SEEDS)
def test_soak_under_random_faults_keeps_every_invariant(world, local_cloud, vmdb, site_director, monkeypatch,
                                                       tmp_path, capfd, request, seed):
    monkeypatch.setattr(client_module, "_db", vmdb.db)
    foreign = [world.add_vm(f"foreign{i}", "SHUTOFF", 30 * 86400, installation="SomeoneElse", record=False)
               for i in range(2)]
    soak = Soak(world, local_cloud, vmdb, seed)
    soak.site_director(site_director)
    cycles = _cycles(request.config)
    started = time.monotonic()
    inject(local_cloud.faults, seed)
    for _ in range(cycles):
        soak.site_director_cycle()
        soak.pilots_finish()
        soak.director_cycle()
    fired = Counter(e.kind for e in local_cloud.faults.events)
    local_cloud.faults.clear()
    clean = 0
    while clean < CLEAN_CYCLES or (soak.waiting_for_a_vm() and clean < MAX_CLEAN_CYCLES):
        soak.site_director_cycle()
        soak.director_cycle()
        clean += 1
    for ce in soak.ces.values():
        ce.shutdown()

    captured = "".join(capfd.readouterr())
    figures = soak.figures({s.id for s in foreign}, captured)
    print(f"\nsoak seed {seed}: {cycles} fault cycles + {clean} clean, 3 CEs, "
          f"{len(soak.returned)} pilots, {time.monotonic() - started:.0f} s; faults fired {dict(sorted(fired.items()))}; "
          f"twins removed by the VMDirector: {sum(out.count(': twin') for out in soak.agent_logs)}; "
          f"creates uncertain (pilot returned, VM adopted or its pilot ended): {captured.count('VM create uncertain')}; "
          f"DIRAC's SiteDirector submitPilots ok/failed {soak.sd_cycles['submitPilots', True]}/"
          f"{soak.sd_cycles['submitPilots', False]}, monitorPilots ok/failed {soak.sd_cycles['monitorPilots', True]}/"
          f"{soak.sd_cycles['monitorPilots', False]}, pilots per CE {dict(sorted(Counter(soak.returned.values()).items()))}")
    for name, value in figures.items():
        print(f"  {name}: {value}")
    assert sum(fired.values()) > 0 and soak.returned
    assert set(soak.returned.values()) == set(CES)  # DIRAC's SiteDirector submitted to every CE
    assert figures == {name: 0 for name in figures}, (soak.escaped, soak.details)
