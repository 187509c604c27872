"""A cloud site for the loopback server: a ``CEType = Cloud`` CE pointing at a LocalCloud.

    cloud = LocalCloud(boot=True, ...)
    site = attach_cloud(server, cloud)      # before cloud.start(): VMs must see the pilot files
    cloud.start()
    configure_cloud_site(server, cloud)     # CS (CE, queue, profile, agents) + RSS
    server.start_component("SiteDirector", ["dirac-agent", "WorkloadManagement/SiteDirector"])

The CE's options follow JenniferDIRAC's CloudComputingElement documentation; the queue gets
``maxCPUTime`` and ``SI00`` (DIRAC derives the queue CPU time the Matcher requires from them) and
``ExtraPilotOptions`` for a pilot that runs one job and ends, so the VM powers off. The
contextualization profile has no CVMFS: the pilot uses the preinstalled DIRAC of the loopback
server (``/Operations/Defaults/Pilot/PreinstalledEnv``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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


def cloud_site_cs(cloud, auth_file: str, cert_dir: str, options: CloudSiteOptions = CloudSiteOptions()) -> str:
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
    }}
  }}
}}
"""


def configure_cloud_site(server, cloud, options: CloudSiteOptions = CloudSiteOptions()) -> None:
    """Write the cloud credentials (0600) and merge the cloud site into the running CS."""
    roots = server.roots
    auth = roots.server / "etc" / "cloud.auth"
    fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"[DEFAULT]\nkey = {cloud.credentials.username}\nsecret = {cloud.credentials.password}\n")
    server.add_cs(cloud_site_cs(cloud, str(auth), str(roots.cert_dir), options))
