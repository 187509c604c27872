"""Shared helpers of the cloud CE tests (constants, CE parameters, LocalCloud views)."""

from __future__ import annotations

import os

from JenniferDIRAC.Resources.Cloud.model import OwnerTags

INSTALLATION = "JenniferTest"
CE_NAME = "cloud.local.test"
SITE = "CLOUD.Local.test"
VO = "testvo"


def ok(result):
    """The value of an S_OK, failing the test on an S_ERROR with its message."""
    assert result["OK"], result.get("Message")
    return result["Value"]


def write_cloud_auth(path, key, secret, extra=""):
    path.write_text(f"[DEFAULT]\nkey = {key}\nsecret = {secret}\n{extra}")
    os.chmod(path, 0o600)
    return str(path)


def ce_parameters(cloud, auth_file, **overrides):
    params = {
        "CloudType": "OPENSTACK",
        # DIRAC's libcloud-style options, as an existing DIRAC CloudCE configuration has them
        "Driver_ex_force_auth_url": cloud.base_url + "/identity",
        "Driver_ex_force_auth_version": "3.x_password",
        "Driver_ex_tenant_name": cloud.credentials.project_name,
        "CloudAuth": auth_file,
        "Instance_Image": "name:EL9-x86_64",
        "Instance_Flavor": "name:m1.small",
        "Instance_Networks": "name:private",
        "InstallationName": INSTALLATION,
        "Site": SITE,
        "Community": VO,
        "MaxTotalJobs": 100,
        "MaxWaitingJobs": 50,
        "HTTPTimeout": 10,
    }
    params.update({k: str(v) for k, v in overrides.items()})
    return {k: v for k, v in params.items() if v != "None"}


class PilotAgentsDBView:
    """PilotAgentsDB at the edge: getPilotInfo answers from a dict of statuses (and keeps what
    it was asked)."""

    def __init__(self, statuses):
        self.statuses = statuses
        self.asked = []

    def getPilotInfo(self, refs):
        self.asked.append(list(refs))
        return {"OK": True, "Value": {r: {"Status": self.statuses[r]} for r in refs if r in self.statuses}}


def owner_metadata(ce_name=CE_NAME, installation=INSTALLATION, stamp=""):
    return OwnerTags(installation=installation, ce=ce_name, vo=VO, stamp=stamp).to_metadata()


def live_servers(cloud):
    """The servers neither deleted nor being deleted (Nova lists those for a while)."""
    return [s for s in cloud.compute.servers.values() if s.status != "DELETED" and s.task_state != "deleting"]


def user_data_text(server) -> str:
    """The #cloud-config a LocalCloud server was created with (gunzipped if packed)."""
    import base64
    import gzip

    raw = base64.b64decode(server.user_data)
    return gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()


def cfg_text(tree: dict, indent: int = 0) -> str:
    """DIRAC CFG text from nested dicts (dicts are sections, everything else an option)."""
    pad = "  " * indent
    lines = []
    for key, value in tree.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key}", f"{pad}{{", cfg_text(value, indent + 1), f"{pad}}}"]
        else:
            lines.append(f"{pad}{key} = {value}")
    return "\n".join(line for line in lines if line)


def load_cs(tree: dict) -> None:
    """Merge `tree` into this process's gConfig."""
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(CFG().loadFromBuffer(cfg_text(tree)))
