"""The two OpenStack targets the CE tests run against, behind one small interface.

``localcloud``: the project's emulator (fast, scriptable faults, any number of VMs).
``realnova``: real Keystone 30 + Nova 34 on loopback (tests/openstack_testkit.py), slow (about
one VM a second), so the tests keep its VM counts small.

A test arranges the cloud only through this interface (VMs in a given state, quotas, counters);
the code under test gets the demo project's credentials and nothing else.
"""

from __future__ import annotations

from typing import Any

from ce_testkit import INSTALLATION, SITE, VO, write_cloud_auth
from openstack_testkit import ClientCounter, RealOpenStack, ServerView, wait_until

AUTH_KINDS = ("password", "application_credential", "token")


class LocalCloudTarget:
    name = "localcloud"

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.counters = cloud.counters
        self.project_id = cloud.project_id

    def ce_parameters(self, auth_file: str) -> dict[str, Any]:
        return {
            "Driver_ex_force_auth_url": self.cloud.base_url + "/identity",
            "Driver_ex_tenant_name": self.cloud.credentials.project_name,
            "CloudAuth": auth_file,
            "Instance_Image": "name:EL9-x86_64",
            "Instance_Flavor": "name:m1.small",
            "Instance_Networks": "name:private",
        }

    def secrets(self, kind: str) -> tuple[str, str, str]:
        """(key, secret, extra CloudAuth lines) for one way of authenticating."""
        c = self.cloud.credentials
        if kind == "password":
            return c.username, c.password, ""
        if kind == "application_credential":
            return c.application_credential_id, c.application_credential_secret, ""
        token = _password_token(self.cloud.auth_url, c)
        return "unused", token, f"auth_type = token\nproject_name = {c.project_name}\n" \
                                f"project_domain_name = {c.domain_name}\n"

    def servers(self) -> list[ServerView]:
        return [_local_view(s) for s in self.cloud.compute.servers.values() if s.status != "DELETED"]

    def live_servers(self) -> list[ServerView]:
        return [s for s in self.servers() if s.task_state != "deleting"]

    def add_vm(self, name: str, metadata: dict[str, str], state: str = "ACTIVE") -> str:
        fault = {"code": 500, "message": "Unknown error"} if state == "ERROR" else None
        server = self.cloud.compute.add_server(name, self.project_id, status=state, metadata=metadata,
                                               fault=fault)
        return server.id

    def set_quota(self, instances: int = -1, cores: int = -1, ram: int = -1) -> None:
        self.cloud.compute.set_quota(instances=instances, cores=cores, ram=ram)

    def finish_deletions(self) -> None:
        self.cloud.compute.finish_deletions()

    def request_delete(self, server_id: str) -> None:
        self.cloud.compute.delete_server(None, server_id)

    def arm_quota_race(self, instances: int, creates: int) -> None:
        """The next creates race the quota recheck: all accepted, the extra ones ERROR/413."""
        self.cloud.faults.quota_recheck_next_vms(creates - instances)

    def wait_active(self, server_ids) -> None:
        for server_id in server_ids:
            assert self.cloud.compute.get_server(None, server_id).status == "ACTIVE"

    def console_marker(self, server_id: str) -> str:
        return f"LocalCloud virtual machine {server_id}"


class RealNovaTarget:
    name = "realnova"

    def __init__(self, cloud: RealOpenStack, counter: ClientCounter) -> None:
        self.cloud = cloud
        self.counters = counter
        self.project_id = cloud.project_id

    def ce_parameters(self, auth_file: str) -> dict[str, Any]:
        return {
            "Driver_ex_force_auth_url": self.cloud.keystone_url,
            "Driver_ex_tenant_name": self.cloud.demo["project_name"],
            "CloudAuth": auth_file,
            "Instance_Image": self.cloud.image_id,
            "Instance_Flavor": "name:m1.small",
            "Instance_Networks": self.cloud.network_id,
        }

    def secrets(self, kind: str) -> tuple[str, str, str]:
        demo = self.cloud.demo
        if kind == "password":
            return demo["username"], demo["password"], ""
        if kind == "application_credential":
            appcred = self.cloud.application_credential
            return appcred["id"], appcred["secret"], ""
        return "unused", self.cloud.demo_token(), (f"auth_type = token\nproject_name = {demo['project_name']}\n"
                                                   "project_domain_name = Default\n")

    def servers(self) -> list[ServerView]:
        return self.cloud.servers()

    def live_servers(self) -> list[ServerView]:
        return self.cloud.live_servers()

    def add_vm(self, name: str, metadata: dict[str, str], state: str = "ACTIVE") -> str:
        server_id = self.cloud.create_server(name, metadata)
        if state == "ACTIVE":
            self.cloud.wait_status(server_id, "ACTIVE")
        elif state == "SHUTOFF":
            self.cloud.stop(server_id)
        elif state == "ERROR":
            self.cloud.set_error(server_id)
        else:
            raise ValueError(f"real Nova target cannot hold a VM in {state}")
        return server_id

    def set_quota(self, instances: int = -1, cores: int = -1, ram: int = -1) -> None:
        self.cloud.set_quota(instances=instances, cores=cores, ram=ram)

    def request_delete(self, server_id: str) -> None:
        self.cloud.nova("DELETE", f"/servers/{server_id}")

    def arm_quota_race(self, instances: int, creates: int) -> None:
        """Real Nova races by itself: lower the quota behind the CE's back; its concurrent
        creates all pass the API's check and the conductor's recheck errors the extra ones."""
        self.cloud.set_quota(instances=instances)

    def wait_active(self, server_ids) -> None:
        for server_id in server_ids:
            self.cloud.wait_status(server_id, "ACTIVE")

    def console_marker(self, server_id: str) -> str:
        return "FAKE CONSOLE OUTPUT"  # what Nova's fake virt driver answers

    def finish_deletions(self) -> None:
        # Nova lists a deleted server as deleting, then briefly as DELETED, then not at all
        wait_until(lambda: all(s.task_state != "deleting" and s.status != "DELETED" for s in self.cloud.servers()),
                   60, "deletions finished")


def write_auth(target, kind: str, path) -> str:
    key, secret, extra = target.secrets(kind)
    return write_cloud_auth(path, key, secret, extra=extra)


def target_ce_parameters(target, auth_file: str, kind: str = "password", **overrides) -> dict[str, str]:
    params: dict[str, Any] = {
        "CloudType": "OPENSTACK",
        "Driver_ex_force_auth_version": {"password": "3.x_password", "application_credential": "3.x_appcred",
                                         "token": None}[kind],
        "InstallationName": INSTALLATION,
        "Site": SITE,
        "Community": VO,
        "MaxTotalJobs": 100,
        "MaxWaitingJobs": 50,
        "HTTPTimeout": 30,
        **target.ce_parameters(auth_file),
    }
    if kind != "password":
        params["Driver_ex_tenant_name"] = None
    params.update(overrides)
    return {k: str(v) for k, v in params.items() if v is not None and str(v) != "None"}


def _local_view(server) -> ServerView:
    fault = {"code": server.fault.code, "message": server.fault.message} if server.fault else None
    return ServerView(id=server.id, name=server.name, status=server.status, task_state=server.task_state,
                      metadata=dict(server.metadata), user_data=server.user_data, fault=fault,
                      security_groups=list(server.security_groups),
                      availability_zone=server.availability_zone, raw={})


def _password_token(auth_url: str, credentials) -> str:
    import requests

    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": credentials.username, "password": credentials.password,
        "domain": {"name": credentials.domain_name}}}},
        "scope": {"project": {"name": credentials.project_name, "domain": {"name": credentials.domain_name}}}}}
    reply = requests.post(f"{auth_url.rstrip('/')}/auth/tokens", json=body, timeout=30)
    reply.raise_for_status()
    return reply.headers["X-Subject-Token"]
