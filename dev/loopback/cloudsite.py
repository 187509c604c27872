"""A cloud site for the loopback server: a ``CEType = Cloud`` CE pointing at a LocalCloud.

    cloud = LocalCloud(boot=True, ...)
    site = attach_cloud(server, cloud)      # before cloud.start(): VMs must see the pilot files
    cloud.start()
    port = configure_cloud_site(server, cloud)   # CS (CE, queue, profile, agents, endpoint) + RSS
    start_cloud_agents(server, port)             # SiteDirector, VMDirector, VMEndpoint

The CE's options follow JenniferDIRAC's CloudComputingElement documentation; the queue gets
``maxCPUTime`` and ``SI00`` (DIRAC derives the queue CPU time the Matcher requires from them) and
``ExtraPilotOptions`` for a pilot that runs one job and ends, so the VM powers off. The
contextualization profile has no CVMFS: the pilot uses the preinstalled DIRAC of the loopback
server (``/Operations/Defaults/Pilot/PreinstalledEnv``). The VMs report (boot and pilot logs,
heartbeats, shutdown message) to the VM endpoint agent over plain HTTP on 127.0.0.1 with their
per-VM tokens.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass

from dev.mariadb import free_port

from .config import SITE, VO

CE = "localcloud.loopback"
QUEUE = "default"
PROFILE = "Loopback"


@dataclass(frozen=True)
class CloudSiteOptions:
    ce: str = CE
    queue: str = QUEUE
    max_total_jobs: int = 1
    max_waiting_jobs: int = 1
    extra_pilot_options: str = "-M 1, --StopAfterFailedMatches=1, --PollingTime=1"
    agent_polling_seconds: int = 5
    failed_queue_cycle_factor: int = 4


def attach_cloud(server, cloud) -> None:
    """Let the cloud's VMs read what the pilot needs on this host (pilot files, CA, the
    virtualenv with DIRAC and the extension), which their private /tmp & co would hide."""
    from .server import REPO_ROOT, VENV_BIN

    roots = server.roots
    cloud.booter.readable = tuple(
        str(p) for p in (roots.pilot_files, roots.cert_dir, REPO_ROOT, VENV_BIN.parent)
    )
    # The VMs' own network reaches the DIRAC services (and, once configured, the VM endpoint).
    cloud.booter.reachable = tuple(f"127.0.0.1:{port}" for port in server.endpoints.ports.values())


AGENTS = ("SiteDirector", "VMDirector", "VMEndpoint")


def cloud_site_cs(
    cloud,
    auth_file: str,
    cert_dir: str,
    endpoint_port: int,
    secret_file: str,
    options: CloudSiteOptions = CloudSiteOptions(),
) -> str:
    creds = cloud.credentials
    o = options
    return f"""
Resources
{{
  Sites
  {{
    CLOUD
    {{
      {SITE}
      {{
        CE = loopback-ce, {o.ce}
        CEs
        {{
          {o.ce}
          {{
            CEType = Cloud
            CloudType = OPENSTACK
            Driver_ex_force_auth_url = {cloud.base_url}/identity
            Driver_ex_force_auth_version = 3.x_password
            Driver_ex_tenant_name = {creds.project_name}
            CloudAuth = {auth_file}
            Instance_Image = name:EL9-x86_64
            Instance_Flavor = name:m1.small
            Instance_Networks = name:private
            InstallationName = Loopback
            Context_Profile = {PROFILE}
            Context_MaxLifetime = 1800
            Queues
            {{
              {o.queue}
              {{
                VO = {VO}
                MaxTotalJobs = {o.max_total_jobs}
                MaxWaitingJobs = {o.max_waiting_jobs}
                maxCPUTime = 100000
                SI00 = 1000
                ExtraPilotOptions = {o.extra_pilot_options}
              }}
            }}
          }}
        }}
      }}
    }}
  }}
  Cloud
  {{
    Endpoint
    {{
      URL = http://127.0.0.1:{endpoint_port}
      TokenSecretFile = {secret_file}
    }}
    Profiles
    {{
      {PROFILE}
      {{
        Title = Loopback test VMs (no CVMFS; DIRAC preinstalled)
        VO = {VO}
        Template = el9.cloud-config.j2
        PilotUser = diracpilot
        PilotEnvironment = X509_CERT_DIR={cert_dir}
        HeartbeatSeconds = 60
      }}
    }}
  }}
}}
Systems
{{
  WorkloadManagement
  {{
    Agents
    {{
      SiteDirector
      {{
        VO = {VO}
        Site = {SITE}
        CEs = {o.ce}
        PollingTime = {o.agent_polling_seconds}
        PilotStatusUpdateCycleFactor = 1
        FailedQueueCycleFactor = {o.failed_queue_cycle_factor}
      }}
      VMDirector
      {{
        VO = {VO}
        Site = {SITE}
        CE = {o.ce}
        PollingTime = {o.agent_polling_seconds}
      }}
      VMEndpoint
      {{
        Host = 127.0.0.1
        Port = {endpoint_port}
        UseTLS = no
        PollingTime = {o.agent_polling_seconds}
      }}
    }}
  }}
}}
"""


def _private_file(path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def configure_cloud_site(server, cloud, options: CloudSiteOptions = CloudSiteOptions()) -> int:
    """Write the cloud credentials and the VM token secret (0600), merge the cloud site into the
    running CS; returns the VM endpoint's port."""
    etc = server.roots.server / "etc"
    auth = etc / "cloud.auth"
    _private_file(
        auth, f"[DEFAULT]\nkey = {cloud.credentials.username}\nsecret = {cloud.credentials.password}\n"
    )
    secret = etc / "vm-endpoint.secret"
    _private_file(secret, secrets.token_hex(32) + "\n")
    port = free_port()
    if cloud.booter is not None:
        cloud.booter.reachable = (*cloud.booter.reachable, f"127.0.0.1:{port}")
    server.add_cs(cloud_site_cs(cloud, str(auth), str(server.roots.cert_dir), port, str(secret), options))
    return port


def start_cloud_agents(server, endpoint_port: int, timeout: float = 120) -> None:
    """Start the SiteDirector, the VMDirector and the VM endpoint (stopped by ``server.down``
    or ``stop_cloud_agents``); returns once the endpoint listens."""
    for agent in AGENTS:
        server.start_component(agent, ["dirac-agent", f"WorkloadManagement/{agent}"])
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", endpoint_port)) == 0:
                return
        server.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the VM endpoint is not listening on {endpoint_port}; see {server.roots.logs}"
            )
        time.sleep(0.2)


def stop_cloud_agents(server) -> None:
    for agent in AGENTS:
        server.stop_component(agent)
