"""A LocalCloud seeded with the VMs of both CEs, and the two CE flavours configured against it.

Both fleets live in the same project, as they would when an installation moves from DIRAC's
CloudCE to JenniferDIRAC's: our VMs carry owner metadata and ``jdirac-`` names, the stock CE's
VMs are named ``VMDIRAC3_<8 hex>`` (DIRAC's convention) and carry no metadata.
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from JenniferLocalCloud import LocalCloud
from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference

OURS, STOCK = "ours", "stock"
CE_KINDS = (OURS, STOCK)
CE_COUNT = 4
INSTALLATION = "bench"
SITE = "CLOUD.Bench.org"
VO = "belle"
IMAGE, FLAVOR, NETWORK = "EL9-x86_64", "m1.small", "private"
STOCK_PREFIX = "VMDIRAC3_"
#: How the seeded VMs are spread over the cloud states (the rest are ACTIVE).
STATE_MIX = (("SHUTOFF", 0.08), ("BUILD", 0.05), ("ERROR", 0.02))
#: Seeded VMs were created up to this long ago (some lifecycle rules depend on the age).
MAX_SEEDED_AGE = 3 * 86400
#: Keep seeded BUILD VMs in BUILD for the whole run.
BUILD_SECONDS = 6 * 3600

PILOT_WRAPPER = """#!/bin/bash
# dummy pilot wrapper of the CE benchmark
echo "pilot starting on $(hostname)"
exec /bin/true
"""


def ce_names() -> list[str]:
    return [f"ce{i}.bench.example" for i in range(CE_COUNT)]


@dataclass
class SeededVM:
    server_id: str
    name: str
    ce: str
    status: str
    created: float


@dataclass
class Fleet:
    """The running cloud, its credentials files and the VMs seeded per CE kind and CE name."""

    cloud: LocalCloud
    workdir: Path
    cloud_auth: Path
    wrapper: Path
    vms: dict[str, dict[str, list[SeededVM]]] = field(default_factory=dict)  # kind -> ce -> VMs

    # --- CE parameters as the CS would give them ------------------------------------------
    def ce_parameters(self, kind: str, ce_name: str) -> dict[str, str]:
        return ce_parameters(kind, self.cloud.base_url, self.cloud.credentials.project_name, self.cloud_auth)

    def make_ce(self, kind: str, ce_name: str):
        """A configured CE object of `kind` for `ce_name` (DIRAC's CE API)."""
        return make_ce(kind, ce_name, self.ce_parameters(kind, ce_name))

    # --- pilots ------------------------------------------------------------------------------
    def pilot_refs(self, kind: str, ce_name: str) -> list[str]:
        """The pilot references the SiteDirector holds for the VMs of one CE."""
        vms = self.vms[kind][ce_name]
        if kind == OURS:
            return [pilot_reference(ce_name, vm.name) for vm in vms]
        return [f"cloud://{vm.server_id}" for vm in vms]

    def truth(self, kind: str) -> dict[str, dict[str, int]]:
        """Per CE, what getCEStatus should report: ACTIVE VMs running, BUILD VMs waiting."""
        return {
            name: {"RunningJobs": sum(vm.status == "ACTIVE" for vm in vms),
                   "WaitingJobs": sum(vm.status == "BUILD" for vm in vms)}
            for name, vms in self.vms[kind].items()
        }

    def total(self, kind: str) -> int:
        return sum(len(v) for v in self.vms.get(kind, {}).values())

    # --- seeding -----------------------------------------------------------------------------
    def seed(self, n: int, seed: int) -> None:
        """Bring both fleets to `n` VMs each, spread evenly over the CEs (fast, no HTTP). Both
        fleets get the same sequence of states and ages."""
        for kind in CE_KINDS:
            rng = random.Random(seed)
            per_ce = self.vms.setdefault(kind, {name: [] for name in ce_names()})
            for index in range(self.total(kind), n):
                ce_name = ce_names()[index % CE_COUNT]
                per_ce[ce_name].append(self._add(kind, ce_name, rng))

    def _add(self, kind: str, ce_name: str, rng: random.Random) -> SeededVM:
        status, fault = _pick_state(rng)
        created = self.cloud.clock.now() - rng.uniform(600, MAX_SEEDED_AGE)
        if kind == OURS:
            name = make_vm_name()
            owner = OwnerTags(INSTALLATION, ce_name, vo=VO, stamp=make_stamp(), site=SITE)
            metadata = owner.to_metadata()
        else:
            name = STOCK_PREFIX + uuid.uuid4().hex[:8].upper()  # as DIRAC's CloudCE names them
            metadata = {}
        server = self.cloud.compute.add_server(
            name, self.cloud.project_id, self.cloud.credentials.user_id, status=status, flavor=FLAVOR,
            metadata=metadata, created=created, fault=fault,
        )
        server.updated = created  # a fleet built over days, not all changed at the seeding moment
        return SeededVM(server.id, name, ce_name, status, created)

    def remove_servers(self, server_ids: list[str]) -> None:
        """Take VMs a measurement created out of the cloud again (no HTTP, not counted)."""
        for server_id in server_ids:
            self.cloud.compute.delete_server(None, server_id)
        self.cloud.compute.finish_deletions()  # Nova-like DELETEs stay listed for a while
        for server_id in server_ids:
            self.cloud.compute.deleted.pop(server_id, None)

    def server_ids_named(self, names: set[str]) -> list[str]:
        return [s.id for s in list(self.cloud.compute.servers.values()) if s.name in names]


def ce_parameters(kind: str, base_url: str, project_name: str, cloud_auth: Path) -> dict[str, str]:
    """DIRAC's CloudCE options for an OpenStack endpoint, as DIRAC's docstring documents them
    (the same options configure ours, plus InstallationName/Site/VO)."""
    params = {
        "CEType": "Cloud",
        "CloudType": "OPENSTACK",
        "CloudAuth": str(cloud_auth),
        "Driver_ex_force_auth_url": f"{base_url}/identity",
        "Driver_ex_force_auth_version": "3.x_password",
        "Driver_ex_tenant_name": project_name,
        "Instance_Image": f"name:{IMAGE}",
        "Instance_Flavor": f"name:{FLAVOR}",
        "Instance_Networks": f"name:{NETWORK}",
        "Site": SITE,
        "VO": VO,
    }
    if kind == OURS:
        params["InstallationName"] = INSTALLATION
    return params


def ce_class(kind: str) -> type:
    """The CloudComputingElement class of `kind` (imported on the first call)."""
    if kind == OURS:
        from JenniferDIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement
    elif kind == STOCK:
        from DIRAC.Resources.Computing.CloudComputingElement import CloudComputingElement
    else:
        raise ValueError(f"unknown CE kind {kind!r}: use {' or '.join(CE_KINDS)}")
    return CloudComputingElement


def make_ce(kind: str, ce_name: str, parameters: dict[str, str]):
    """A CE object of `kind` for `ce_name`, configured with `parameters` (DIRAC's CE API)."""
    ce = ce_class(kind)(ce_name)
    result = ce.setParameters(parameters)
    if not result["OK"]:
        raise RuntimeError(f"configuring the {kind} CE {ce_name} failed: {result['Message']}")
    return ce


def shutdown_ces(ces: dict) -> None:
    """Stop the CEs' own threads (ours has some; DIRAC's stock CE none)."""
    for ce in ces.values():
        if hasattr(ce, "shutdown"):
            ce.shutdown()


def _pick_state(rng: random.Random) -> tuple[str, dict | None]:
    draw = rng.random()
    for status, share in STATE_MIX:
        if draw < share:
            fault = {"code": 500, "message": "No valid host was found."} if status == "ERROR" else None
            return status, fault
        draw -= share
    return "ACTIVE", None


def start_fleet(latency_s: float, workdir: str | Path | None = None, token_ttl: float = 3600.0) -> Fleet:
    """A started LocalCloud (quota unlimited, `latency_s` per request, tokens valid `token_ttl`
    seconds of its clock) and the files the CEs read."""
    cloud = LocalCloud(latency=latency_s, build_seconds=BUILD_SECONDS, token_ttl=token_ttl).start()
    cloud.compute.set_quota(instances=-1, cores=-1, ram=-1)
    root = Path(workdir or tempfile.mkdtemp(prefix="bench-ce-"))
    creds = cloud.credentials
    cloud_auth = root / "cloud.auth"
    cloud_auth.write_text(f"[DEFAULT]\nkey = {creds.username}\nsecret = {creds.password}\n")
    os.chmod(cloud_auth, 0o600)
    wrapper = root / "pilot-wrapper.sh"
    wrapper.write_text(PILOT_WRAPPER)
    return Fleet(cloud=cloud, workdir=root, cloud_auth=cloud_auth, wrapper=wrapper)


def change(fleet: Fleet, fraction: float, rng: random.Random, over_s: float) -> int:
    """`fraction` of each kind's VMs end (SHUTOFF, as a VM whose pilot finished), one after
    another over `over_s` seconds of the cloud's clock (real changes are spread over the time
    between two cycles); returns how many of each kind."""
    chosen = {}
    for kind in CE_KINDS:
        active = [vm for vms in fleet.vms.get(kind, {}).values() for vm in vms if vm.status == "ACTIVE"
                  and vm.server_id in fleet.cloud.compute.servers]
        count = min(len(active), max(1, round(fraction * fleet.total(kind))))
        chosen[kind] = rng.sample(active, count)
    count = max((len(vms) for vms in chosen.values()), default=0)
    for index in range(count):
        fleet.cloud.clock.advance(over_s / max(1, count))
        for vms in chosen.values():
            if index < len(vms):
                fleet.cloud.compute.set_state(vms[index].server_id, "SHUTOFF")
                vms[index].status = "SHUTOFF"
    return count
