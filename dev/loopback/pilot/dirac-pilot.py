#!/usr/bin/env python3
"""A small stand-in for DIRAC's pilot (DIRACGrid/Pilot ``dirac-pilot.py``) for offline tests.

The real pilot is not part of the DIRAC wheel and cannot be downloaded here. DIRAC's pilot
wrapper (what the SiteDirector submits) fetches ``pilot.json``, ``pilot.tar`` and
``checksums.sha512`` from ``/Operations/<VO>/Pilot/pilotFileServer`` and runs
``python3 dirac-pilot.py <options> --pilotUUID <stamp>``; this file is what it finds in
``pilot.tar``. It does what the real pilot's default commands do for a pilot that uses an
already-installed DIRAC (``--preinstalledEnv``):

- InstallDIRAC: source the preinstalled environment script;
- ConfigureBasics / ConfigureSite: write the local configuration ``pilot.cfg`` (CS servers from
  pilot.json, site, CE, queue, ``/LocalSite/PilotReference`` from ``PILOT_UUID`` for clouds
  (``DIRAC_PILOT_STAMP`` otherwise), the pilot stamp, CE defaults, ``-o`` options);
- ConfigureCPURequirements: the queue's CPU time from DIRAC's ``dirac-wms-get-queue-cpu-time``,
  times a fixed normalisation factor (``/LocalSite/CPUNormalizationFactor``, default 10): the real
  pilot's benchmark (``dirac-wms-cpu-normalization``) is skipped as meaningless in a test VM;
- LaunchAgent: run ``dirac-agent WorkloadManagement/JobAgent`` with the real pilot's options.

Standard library only: it runs with the worker node's system python, before DIRAC is set up.
"""

from __future__ import annotations

import getopt
import json
import os
import platform
import shlex
import subprocess
import sys
import time

# Options of the real pilot (pilotTools.PilotParams), so that SiteDirector command lines parse.
SHORT = "N:Q:n:o:e:l:r:S:y:M:T:P:G:O:C:K:x:X:Z:D:m:s:t:u:E:F:R:W:V:a:ckdhz"
LONG = [
    "Name=",
    "Queue=",
    "name=",
    "option=",
    "extraPackages=",
    "project=",
    "release=",
    "setup=",
    "CEType=",
    "MaxCycles=",
    "CPUTime=",
    "pilotProcessors=",
    "Group=",
    "OwnerDN=",
    "configurationServer=",
    "certLocation=",
    "execute=",
    "commands=",
    "commandOptions=",
    "disk=",
    "maxNumberOfProcessors=",
    "section=",
    "tag=",
    "url=",
    "commandExtensions=",
    "pilotCFGFile=",
    "reference=",
    "gateway=",
    "wnVO=",
    "pilotUUID=",
    "preinstalledEnv=",
    "preinstalledEnvPrefix=",
    "architectureScript=",
    "CVMFS_locations=",
    "PollingTime=",
    "StopOnApplicationFailure=",
    "StopAfterFailedMatches=",
    "userEnvVariables=",
    "pipInstallOptions=",
    "modules=",
    "requiredTag=",
    "pilotLogging",
    "debug",
    "cert",
    "keepPP",
    "help",
    "Version=",
    "installationName=",
]


def log(level: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {level:<7} [Pilot] {message}", flush=True)


class Params:
    """The subset of the real pilot's parameters this flow uses (same defaults)."""

    def __init__(self, argv: list[str]) -> None:
        self.ce_name = ""
        self.queue = ""
        self.site = ""
        self.vo = ""
        self.ce_type = ""
        self.pilot_uuid = ""
        self.preinstalled_env = ""
        self.options: list[str] = []
        self.max_cycles = 10
        self.polling_time = 20
        self.stop_on_application_failure = "True"
        self.stop_after_failed_matches = 10
        self.cpu_time = 900
        self.processors = 1
        self.config_servers: list[str] = []
        self.release = ""
        opts, _ = getopt.getopt(argv, SHORT, LONG)
        for opt, value in opts:
            if opt in ("-N", "--Name"):
                self.ce_name = value
            elif opt in ("-Q", "--Queue"):
                self.queue = value
            elif opt in ("-n", "--name"):
                self.site = value
            elif opt == "--wnVO":
                self.vo = value
            elif opt in ("-y", "--CEType"):
                self.ce_type = value
            elif opt == "--pilotUUID":
                self.pilot_uuid = value
            elif opt == "--preinstalledEnv":
                self.preinstalled_env = value
            elif opt in ("-o", "--option"):
                self.options.append(value)
            elif opt in ("-M", "--MaxCycles"):
                self.max_cycles = int(value)
            elif opt == "--PollingTime":
                self.polling_time = int(value)
            elif opt == "--StopOnApplicationFailure":
                self.stop_on_application_failure = value
            elif opt == "--StopAfterFailedMatches":
                self.stop_after_failed_matches = int(value)
            elif opt in ("-T", "--CPUTime"):
                self.cpu_time = int(value)
            elif opt in ("-P", "--pilotProcessors"):
                self.processors = int(value)
            elif opt in ("-C", "--configurationServer"):
                self.config_servers = [s.strip() for s in value.split(",") if s.strip()]
            elif opt in ("-r", "--release"):
                self.release = value.split(",")[0]


def load_json(params: Params) -> None:
    """CS servers and the CE's local CE type from pilot.json, as the real pilot does."""
    if not os.path.exists("pilot.json"):
        return
    with open("pilot.json") as stream:
        data = json.load(stream)
    if not params.config_servers:
        servers = data.get("ConfigurationServers", [])
        params.config_servers = servers.split(",") if isinstance(servers, str) else list(servers)
    ce = data.get("CEs", {}).get(params.ce_name, {})
    if not params.ce_type:
        params.ce_type = ce.get(params.queue, {}).get("LocalCEType") or ce.get("LocalCEType", "")
    params.ce_type = params.ce_type or "InProcess"


def submitter_info() -> tuple[str, str]:
    """(flavour, pilot reference) from the environment: the cloud case sets PILOT_UUID."""
    if "PILOT_UUID" in os.environ:
        return "CLOUD", os.environ["PILOT_UUID"]
    return "DIRAC", os.environ.get("DIRAC_PILOT_STAMP", "")


def source_environment(script: str) -> dict[str, str]:
    """The environment after sourcing the preinstalled environment script (InstallDIRAC)."""
    if not os.path.isfile(script):
        log("ERROR", f"preinstalled environment script {script} not found")
        sys.exit(1)
    out = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(script)} >/dev/null && env -0"], capture_output=True, check=True
    ).stdout
    env = {}
    for item in out.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode()] = value.decode(errors="replace")
    return env


def cfg_text(tree: dict, indent: str = "") -> str:
    lines = []
    for key, value in tree.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}", f"{indent}{{", cfg_text(value, indent + "  "), f"{indent}}}"]
        else:
            lines.append(f"{indent}{key} = {value}")
    return "\n".join(line for line in lines if line)


def set_path(tree: dict, path: str, value: str) -> None:
    parts = [p for p in path.strip().split("/") if p]
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def write_cfg(tree: dict, path: str) -> None:
    with open(path, "w") as stream:
        stream.write(cfg_text(tree) + "\n")


def local_config(params: Params, flavour: str, reference: str, workdir: str) -> dict:
    tree: dict = {}
    set_path(tree, "DIRAC/Configuration/Servers", ", ".join(params.config_servers))
    set_path(tree, "DIRAC/Security/UseServerCertificate", "no")
    if params.vo:
        set_path(tree, "DIRAC/VirtualOrganization", params.vo)
        set_path(tree, "Resources/Computing/CEDefaults/VirtualOrganization", params.vo)
    set_path(tree, "Resources/Computing/CEDefaults/NumberOfProcessors", str(params.processors))
    site = {
        "Site": params.site,
        "GridCE": params.ce_name,
        "CEQueue": params.queue,
        "LocalCE": params.ce_type,
        "GridMiddleware": flavour,
        "PilotReference": reference,
        "PilotStamp": params.pilot_uuid,
        "InstancePath": workdir,
        "CPUTimeLeft": str(params.cpu_time),
        "Platform": platform.machine(),
    }
    if params.release:
        site["ReleaseVersion"] = params.release
    for key, value in site.items():
        set_path(tree, f"LocalSite/{key}", value)
    for option in params.options:
        path, _, value = option.partition("=")
        set_path(tree, path.strip().strip("'\""), value.strip().strip("'\""))
    return tree


def cpu_requirement(params: Params, env: dict[str, str], config: str, tree: dict) -> None:
    """Set params.cpu_time (HS06s) and /LocalSite/CPUTimeLeft from the queue length."""
    factor = 10.0
    for option in params.options:
        path, _, value = option.partition("=")
        if path.strip().rstrip("/").endswith("LocalSite/CPUNormalizationFactor"):
            factor = float(value)
    out = subprocess.run(
        ["dirac-wms-get-queue-cpu-time", f"--CPUNormalizationFactor={factor}", "--cfg", config],
        env=env,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(config),
    )
    seconds = None
    for line in out.stdout.splitlines():
        if "CPU time left determined as" in line:
            seconds = int(float(line.replace("CPU time left determined as", "").strip()))
    if out.returncode or seconds is None:
        log(
            "ERROR",
            f"Failed to determine cpu time left in the queue: {out.stdout[-500:]} {out.stderr[-500:]}",
        )
        sys.exit(1)
    params.cpu_time = int(seconds * factor)
    log("INFO", f"Queue length (which is also set as CPUTimeLeft) is {params.cpu_time}")
    set_path(tree, "LocalSite/CPUTimeLeft", str(params.cpu_time))
    set_path(tree, "LocalSite/CPUNormalizationFactor", str(factor))
    write_cfg(tree, config)


def main(argv: list[str]) -> int:
    params = Params(argv)
    load_json(params)
    flavour, reference = submitter_info()
    workdir = os.getcwd()
    log("INFO", f"pilot reference={reference} stamp={params.pilot_uuid} flavour={flavour}")
    log("INFO", f"site={params.site} CE={params.ce_name} queue={params.queue} localCE={params.ce_type}")
    if not params.config_servers:
        log("ERROR", "no configuration server: neither pilot.json ConfigurationServers nor -C")
        return 1
    if not params.preinstalled_env:
        log("ERROR", "this pilot only runs a preinstalled DIRAC: set /Operations/<VO>/Pilot/PreinstalledEnv")
        return 1
    env = source_environment(params.preinstalled_env)
    env["DIRAC_ROOT_PATH"] = workdir
    env["PYTHONUNBUFFERED"] = "yes"
    tree = local_config(params, flavour, reference, workdir)
    config = os.path.join(workdir, "pilot.cfg")
    write_cfg(tree, config)
    # DIRAC reads <DIRAC_ROOT_PATH>/etc/dirac.cfg: the real pilot links it to pilot.cfg too.
    os.makedirs(os.path.join(workdir, "etc"), exist_ok=True)
    if not os.path.lexists(os.path.join(workdir, "etc", "dirac.cfg")):
        os.symlink(os.path.join("..", "pilot.cfg"), os.path.join(workdir, "etc", "dirac.cfg"))
    log("INFO", f"local configuration written to {config}")
    cpu_requirement(params, env, config, tree)
    command = [
        "dirac-agent",
        "WorkloadManagement/JobAgent",
        f"-o MaxCycles={params.max_cycles}",
        f"-o PollingTime={params.polling_time}",
        f"-o StopOnApplicationFailure={params.stop_on_application_failure}",
        f"-o StopAfterFailedMatches={params.stop_after_failed_matches}",
        "-o LogLevel=INFO",
        "-s",
        "/Resources/Computing/CEDefaults",
        f"-o WorkingDirectory={workdir}",
        f"-o /LocalSite/CPUTime={params.cpu_time}",
        f"-o /LocalSite/InstancePath={workdir}",
        "--cfg",
        config,
    ]
    log("INFO", "Starting JobAgent: " + " ".join(command))
    ret = subprocess.call(shlex.split(" ".join(command)), env=env, cwd=workdir)
    if ret:
        log("ERROR", f"Error executing the JobAgent [ERROR {ret}]")
        return ret
    log("INFO", "JobAgent finished")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
