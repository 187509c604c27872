"""The DIRAC configuration of the loopback server, written with diraccfg.

Three roots, each a ``DIRAC_ROOT_PATH`` with its own ``etc/dirac.cfg``:

- server: local configuration of the server components (master CS flag, database access,
  host certificate). Secrets (database password) live only here, never in the served CS.
- the master CS file ``server/etc/<CS_NAME>.cfg``: Registry, Operations, Resources and every
  component's section (defaults taken from DIRAC's and the extensions' ConfigTemplate.cfg).
- client: what a user needs to submit jobs (CS URL, no server certificate).

Everything is DIPS: DIRAC's Tornado (HTTPS) components cannot run from a PyPI install.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from diraccfg import CFG

from .certs import HOST_DN, USER_DN

CS_NAME = "Loopback"
VO = "loopback"
USER_NAME = "loopbackuser"
USER_GROUP = "loopback_user"
PILOT_GROUP = "loopback_pilot"
ADMIN_GROUP = "dirac_admin"
SITE = "CLOUD.Loopback.local"
DIRECT_CE = "loopback-ce"
DIRECT_QUEUE = "loopback-queue"
SANDBOX_SE = "ProductionSandboxSE"

# (system, service): database names the service needs (MySQL).
SERVICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("Configuration", "Server"): (),
    ("Framework", "ProxyManager"): ("ProxyDB",),
    ("Accounting", "DataStore"): ("AccountingDB",),
    ("Accounting", "ReportGenerator"): ("AccountingDB",),
    ("ResourceStatus", "ResourceStatus"): ("ResourceStatusDB",),
    ("ResourceStatus", "ResourceManagement"): ("ResourceManagementDB",),
    ("WorkloadManagement", "JobManager"): ("JobDB", "JobLoggingDB", "TaskQueueDB", "PilotAgentsDB"),
    ("WorkloadManagement", "JobMonitoring"): ("JobDB", "JobLoggingDB"),
    ("WorkloadManagement", "JobStateUpdate"): ("JobDB", "JobLoggingDB"),
    ("WorkloadManagement", "Matcher"): ("JobDB", "TaskQueueDB", "PilotAgentsDB"),
    ("WorkloadManagement", "PilotManager"): ("PilotAgentsDB",),
    ("WorkloadManagement", "SandboxStore"): ("SandboxMetadataDB",),
    ("WorkloadManagement", "OptimizationMind"): ("JobDB",),
    ("WorkloadManagement", "WMSAdministrator"): ("JobDB", "PilotAgentsDB"),
}
# database name -> system
DATABASES: dict[str, str] = {
    "ProxyDB": "Framework",
    "AccountingDB": "Accounting",
    "ResourceStatusDB": "ResourceStatus",
    "ResourceManagementDB": "ResourceStatus",
    "JobDB": "WorkloadManagement",
    "JobLoggingDB": "WorkloadManagement",
    "TaskQueueDB": "WorkloadManagement",
    "PilotAgentsDB": "WorkloadManagement",
    "SandboxMetadataDB": "WorkloadManagement",
    # JenniferDIRAC's own (cloud VM state), installed from the extension like DIRAC's.
    "VMDB": "WorkloadManagement",
}
EXECUTORS = ("Optimizers", "JobPath", "JobSanity", "InputData", "JobScheduling")

HOST_PROPERTIES = (
    "TrustedHost",
    "CSAdministrator",
    "JobAdministrator",
    "FullDelegation",
    "ProxyManagement",
    "Operator",
    "GenericPilot",
    "ServiceAdministrator",
    "SiteManager",
)


@dataclass(frozen=True)
class Roots:
    base: Path

    @property
    def server(self) -> Path:
        return self.base / "server"

    @property
    def client(self) -> Path:
        return self.base / "client"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def grid_security(self) -> Path:
        return self.server / "etc" / "grid-security"

    @property
    def cert_dir(self) -> Path:
        return self.grid_security / "certificates"

    @property
    def user_dir(self) -> Path:
        return self.base / "user"

    @property
    def proxy(self) -> Path:
        return self.client / "proxy.pem"

    @property
    def sandboxes(self) -> Path:
        return self.server / "storage" / "sandboxes"

    @property
    def pilot_files(self) -> Path:
        return self.base / "pilotfiles"

    @property
    def cs_file(self) -> Path:
        return self.server / "etc" / f"{CS_NAME}.cfg"


@dataclass(frozen=True)
class Endpoints:
    """Where everything listens."""

    ports: dict[str, int]  # "System/Service" -> port
    db_host: str
    db_port: int
    db_user: str
    opensearch_port: int
    host: str = "localhost"

    def url(self, system: str, service: str) -> str:
        return f"dips://{self.host}:{self.ports[f'{system}/{service}']}/{system}/{service}"

    @property
    def cs_url(self) -> str:
        return self.url("Configuration", "Server")


@dataclass
class ExtraConfig:
    """Additions of the caller (cloud CE, agents, ...), merged last into the master CS."""

    cs: list[str] = field(default_factory=list)


def _template_roots() -> list[Path]:
    """ConfigTemplate.cfg roots, extensions first (as DIRAC's ObjectLoader searches)."""
    roots = []
    for package in ("JenniferDIRAC", "DIRAC"):
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            roots.append(Path(spec.origin).parent)
    return roots


def template_section(system: str, kind: str, name: str) -> CFG:
    """``<kind>/<name>`` of ``<System>System/ConfigTemplate.cfg``, extension first; empty if none."""
    for root in _template_roots():
        path = root / f"{system}System" / "ConfigTemplate.cfg"
        if not path.exists():
            continue
        cfg = CFG().loadFromFile(str(path))
        section = cfg.getRecursive(f"{kind}/{name}")
        if section and isinstance(section.get("value"), CFG):
            return section["value"].clone()
    return CFG()


def _section(cfg: CFG, path: str) -> CFG:
    """Create ``a/b/c`` level by level (diraccfg does not create nested paths) and return it."""
    node = cfg
    for part in path.strip("/").split("/"):
        if not node.isSection(part):
            node.createNewSection(part)
        node = node[part]
    return node


def _merge(cfg: CFG, path: str, other: CFG) -> None:
    parent, _, leaf = path.strip("/").rpartition("/")
    holder = _section(cfg, parent) if parent else cfg
    merged = holder[leaf].mergeWith(other) if holder.isSection(leaf) else other
    if holder.isSection(leaf):
        holder.deleteKey(leaf)
    holder.createNewSection(leaf, "", merged)


def service_section(system: str, service: str, port: int) -> CFG:
    section = template_section(system, "Services", service).mergeWith(
        CFG().loadFromDict({"Port": str(port), "Protocol": "dips"})
    )
    if (system, service) == ("Configuration", "Server"):
        section = section.mergeWith(
            CFG().loadFromDict(
                {
                    "HandlerPath": "DIRAC/ConfigurationSystem/Service/ConfigurationHandler.py",
                    "Authorization": {"Default": "authenticated", "commitNewData": "CSAdministrator"},
                }
            )
        )
    return section


def server_local_cfg(roots: Roots, ep: Endpoints, db_password: str) -> CFG:
    cfg = CFG().loadFromDict(
        {
            "DIRAC": {
                "Hostname": ep.host,
                "VirtualOrganization": VO,
                "Configuration": {"Master": "yes", "Name": CS_NAME, "Servers": ep.cs_url},
                "Security": {
                    "UseServerCertificate": "yes",
                    "CertFile": str(roots.grid_security / "hostcert.pem"),
                    "KeyFile": str(roots.grid_security / "hostkey.pem"),
                },
            },
            "LocalSite": {"Site": SITE},
            "LocalInstallation": {
                "Database": {"Host": ep.db_host, "Port": str(ep.db_port), "User": ep.db_user}
            },
            "Systems": {
                "Databases": {
                    "User": ep.db_user,
                    "Password": db_password,
                    "Host": ep.db_host,
                    "Port": str(ep.db_port),
                },
                # The stand-in needs no credentials, DIRAC still requires both options.
                "NoSQLDatabases": {
                    "Host": "127.0.0.1",
                    "Port": str(ep.opensearch_port),
                    "SSL": "No",
                    "User": "loopback",
                    "Password": "unused",
                },
            },
        }
    )
    _merge(
        cfg,
        "Systems/Configuration/Services/Server",
        service_section("Configuration", "Server", ep.ports["Configuration/Server"]),
    )
    return cfg


def master_cs(roots: Roots, ep: Endpoints, extra: ExtraConfig) -> CFG:
    group_props = {
        USER_GROUP: ["NormalUser"],
        PILOT_GROUP: ["GenericPilot", "LimitedDelegation"],
        ADMIN_GROUP: [
            "AlarmsManagement",
            "ServiceAdministrator",
            "CSAdministrator",
            "JobAdministrator",
            "FullDelegation",
            "ProxyManagement",
            "Operator",
        ],
    }
    cfg = CFG().loadFromDict(
        {
            "DIRAC": {
                "VirtualOrganization": VO,
                "Configuration": {"Name": CS_NAME, "MasterServer": ep.cs_url, "Servers": ep.cs_url},
            },
            "DiracX": {"DisabledVOs": VO},
            "Registry": {
                "DefaultGroup": USER_GROUP,
                "VO": {VO: {"VOAdmin": USER_NAME}},
                "Users": {USER_NAME: {"DN": USER_DN, "Email": "loopback@localhost"}},
                "Groups": {
                    name: {"Users": USER_NAME, "Properties": props, "VO": VO, "AutoUploadProxy": "True"}
                    for name, props in group_props.items()
                },
                "Hosts": {"localhost": {"DN": HOST_DN, "Properties": list(HOST_PROPERTIES)}},
            },
            "Operations": {
                "Defaults": {
                    "JobDescription": {"AllowedJobTypes": ["User", "Test", "Hospital"]},
                    "Pilot": {
                        "GenericPilotGroup": PILOT_GROUP,
                        "GenericPilotUser": USER_NAME,
                        "pilotFileServer": f"file:{roots.pilot_files}",
                        "PreinstalledEnv": str(roots.pilot_files / "diracosrc"),
                    },
                    "Shifter": {},
                    "ResourceStatus": {"Config": {"State": "Active", "Cache": "600"}},
                },
            },
            "Resources": {
                "Sites": {
                    SITE.split(".")[0]: {
                        SITE: {
                            "Name": SITE.split(".")[1],
                            "CE": DIRECT_CE,
                            "CEs": {
                                DIRECT_CE: {
                                    "CEType": "InProcess",
                                    "Queues": {DIRECT_QUEUE: {"maxCPUTime": "100000", "SI00": "1000"}},
                                }
                            },
                        }
                    }
                },
                "StorageElements": {
                    SANDBOX_SE: {
                        "BackendType": "DISET",
                        "DIP": {
                            "Host": ep.host,
                            "Port": str(ep.ports["WorkloadManagement/SandboxStore"]),
                            "Protocol": "dips",
                            "Path": "/WorkloadManagement/SandboxStore",
                            "Access": "remote",
                        },
                    }
                },
            },
        }
    )
    for key in sorted(ep.ports):
        system, service = key.split("/")
        _section(cfg, f"Systems/{system}/URLs").setOption(service, ep.url(system, service))
        _merge(cfg, f"Systems/{system}/Services/{service}", service_section(system, service, ep.ports[key]))
    _section(cfg, "Systems/WorkloadManagement/Services/SandboxStore").setOption(
        "BasePath", str(roots.sandboxes)
    )
    # The extensions are installed in editable mode here, which DIRAC's own plotter search misses.
    _section(cfg, "Systems/Accounting/Services/ReportGenerator").setOption(
        "HandlerPath", "JenniferDIRAC/AccountingSystem/Service/ExtensionReportGeneratorHandler.py"
    )
    for db, system in DATABASES.items():
        _merge(
            cfg,
            f"Systems/{system}/Databases/{db}",
            CFG().loadFromDict({"DBName": db, "Host": ep.db_host, "Port": str(ep.db_port)}),
        )
    # DIRAC 9.1's AccountingDB inserts a new key value from several threads at once; the loser
    # of that race caches its "Duplicate entry" error and fails those records until a restart.
    # One bundle per type per minute keeps the insertions of a type in one thread.
    _section(cfg, "Systems/Accounting/Databases/AccountingDB").setOption("RecordsPerSlot", "100000")
    _merge(
        cfg,
        "Systems/WorkloadManagement/Databases/JobParametersDB",
        CFG().loadFromDict(
            {"DBName": "JobParametersDB", "Host": "127.0.0.1", "Port": str(ep.opensearch_port), "SSL": "No"}
        ),
    )
    for executor in EXECUTORS:
        _merge(
            cfg,
            f"Systems/WorkloadManagement/Executors/{executor}",
            template_section("WorkloadManagement", "Executors", executor),
        )
    for agent in ("JobAgent", "SiteDirector", "PilotStatusAgent"):
        _merge(
            cfg,
            f"Systems/WorkloadManagement/Agents/{agent}",
            template_section("WorkloadManagement", "Agents", agent),
        )
    # The default 10 s pause before a matched job is started only slows the tests down.
    _section(cfg, "Systems/WorkloadManagement/Agents/JobAgent").setOption("SubmissionDelay", "1")
    for text in extra.cs:
        cfg = cfg.mergeWith(CFG().loadFromBuffer(text))
    return cfg


def client_cfg(ep: Endpoints) -> CFG:
    return CFG().loadFromDict(
        {
            "DIRAC": {
                "VirtualOrganization": VO,
                "Configuration": {"Servers": ep.cs_url},
                "Security": {"UseServerCertificate": "no"},
            },
            # No Accounting service runs here: user commands must not try to send records.
            "LocalSite": {"Site": SITE, "DisableAccounting": "True"},
        }
    )


def write_cfg(cfg: CFG, path: Path, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = str(cfg)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
