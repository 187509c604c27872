"""``LocalCloud``: the services, their state, the fault layer and the server, wired together."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .app import LocalCloudApp, LoopbackServer
from .clock import Clock
from .compute import DELETE_SECONDS, ComputeState
from .compute_api import ComputeAPI
from .counters import RequestCounters
from .faults import FaultInjector
from .identity import DEFAULT_DOMAIN_NAME, IdentityAPI, IdentityState
from .ids import IdFactory
from .image import ImageAPI, ImageState
from .network import NetworkAPI, NetworkState

REGION = "RegionOne"
DEFAULT_FLAVORS = (  # name, vCPUs, RAM MB, disk GB
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
)
DEFAULT_IMAGE = "EL9-x86_64"
DEFAULT_NETWORK = "private"
OIDC_IDP = "egi.eu"
OIDC_PROTOCOL = "openid"


@dataclass(frozen=True)
class Credentials:
    """The default identities of a LocalCloud. Secrets are kept out of ``repr``."""

    auth_url: str
    region_name: str
    domain_name: str
    project_name: str
    project_id: str
    username: str
    user_id: str
    password: str = field(repr=False)
    application_credential_id: str = ""
    application_credential_name: str = ""
    application_credential_secret: str = field(default="", repr=False)
    oidc_identity_provider: str = OIDC_IDP
    oidc_protocol: str = OIDC_PROTOCOL
    oidc_access_token: str = field(default="", repr=False)


class LocalCloud:
    """A loopback OpenStack-compatible cloud; see the package docstring for the API."""

    def __init__(self, token_ttl: float = 3600.0, boot: bool = False, sandbox_root: str | Path | None = None,
                 latency: float = 0.0, seed: int = 0, build_seconds: float = 0.0,
                 delete_seconds: float = DELETE_SECONDS,
                 host: str = "127.0.0.1", port: int = 0, region_name: str = REGION,
                 tick_seconds: float = 0.2, oidc_access_tokens: tuple[str, ...] = ()) -> None:
        self.host = host
        self.requested_port = port
        self.region_name = region_name
        self.tick_seconds = tick_seconds
        self.clock = Clock()
        self.ids = IdFactory(seed)
        self.counters = RequestCounters()
        self.faults = FaultInjector(seed=seed, latency=latency)
        self.identity = IdentityState(self.clock, self.ids, token_ttl=token_ttl)
        self.image = ImageState(self.clock, self.ids)
        self.network = NetworkState(self.clock, self.ids)
        self.compute = ComputeState(self.clock, self.ids, self.image, self.network, self.faults,
                                    build_seconds=build_seconds, delete_seconds=delete_seconds)
        self.identity.catalog_factory = self._catalog
        self.booter = None
        if boot:
            from .boot.booter import SandboxBooter

            self.booter = SandboxBooter(sandbox_root, region=region_name)
            self.compute.booter = self.booter
        self._server: LoopbackServer | None = None
        self._ticker: threading.Thread | None = None
        self._seed_defaults()
        for access_token in oidc_access_tokens:
            self.add_oidc_access_token(access_token)

    # --- defaults --------------------------------------------------------------------------
    def _seed_defaults(self) -> None:
        project = self.identity.add_project("jennifer")
        user = self.identity.add_user("jennifer", secrets.token_urlsafe(16), project)
        cred = self.identity.add_application_credential(user, project, "localcloud-appcred")
        access_token = "oidc-" + secrets.token_urlsafe(24)
        self.identity.add_oidc_access_token(access_token, user, OIDC_IDP, OIDC_PROTOCOL)
        self._default = (project, user, cred, access_token)
        for name, vcpus, ram, disk in DEFAULT_FLAVORS:
            self.compute.add_flavor(name, vcpus, ram, disk)
        self.image.add_image(DEFAULT_IMAGE, min_disk=10, properties={"os_distro": "almalinux",
                                                                    "os_version": "9"})
        self.network.add_network(DEFAULT_NETWORK, cidr="10.0.0.0/16")

    @property
    def credentials(self) -> Credentials:
        project, user, cred, access_token = self._default
        return Credentials(
            auth_url=self.auth_url if self._server else "", region_name=self.region_name,
            domain_name=DEFAULT_DOMAIN_NAME, project_name=project.name, project_id=project.id,
            username=user.name, user_id=user.id, password=user.password,
            application_credential_id=cred.id, application_credential_name=cred.name,
            application_credential_secret=cred.secret, oidc_access_token=access_token,
        )

    @property
    def project_id(self) -> str:
        return self._default[0].id

    def add_oidc_access_token(self, access_token: str) -> None:
        """Accept one more OIDC access token (mapped to the default user)."""
        self.identity.add_oidc_access_token(access_token, self._default[1], OIDC_IDP, OIDC_PROTOCOL)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LocalCloud":
        if self._server is not None:
            return self
        services = [
            IdentityAPI(self.identity), ComputeAPI(self.compute, self.image),
            ImageAPI(self.image), NetworkAPI(self.network),
        ]
        app = LocalCloudApp(services, self.identity, self.counters, self.faults)
        self.faults.stopping.clear()
        self._server = LoopbackServer(app, self.host, self.requested_port)
        self._server.start()
        self._ticker = threading.Thread(target=self._tick, name="localcloud-ticker", daemon=True)
        self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self.faults.stopping.wait(self.tick_seconds):
            self.compute.tick()

    def stop(self) -> None:
        self.faults.stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._ticker is not None:
            self._ticker.join(timeout=10)
            self._ticker = None
        if self.booter is not None:
            self.booter.stop_all()

    def __enter__(self) -> "LocalCloud":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalCloud is not started; call start() first")
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/identity/v3"

    def _catalog(self, base_url: str) -> list[dict[str, Any]]:
        entries = [
            ("identity", "keystone", f"{base_url}/identity"),
            ("compute", "nova", f"{base_url}/compute/v2.1"),
            ("image", "glance", f"{base_url}/image"),
            ("network", "neutron", f"{base_url}/network"),
        ]
        return [
            {"type": kind, "name": name, "id": f"{kind}-service",
             "endpoints": [{"id": f"{kind}-{iface}", "interface": iface, "region": self.region_name,
                            "region_id": self.region_name, "url": url}
                           for iface in ("public", "internal")]}
            for kind, name, url in entries
        ]

    def clouds_yaml_entry(self, auth_type: str = "password") -> dict[str, Any]:
        """A ``clouds.yaml`` cloud for ``auth_type`` ``password``, ``v3applicationcredential``
        or ``v3oidcaccesstoken``."""
        c = self.credentials
        if auth_type == "password":
            auth = {"auth_url": self.auth_url, "username": c.username, "password": c.password,
                    "project_name": c.project_name, "user_domain_name": c.domain_name,
                    "project_domain_name": c.domain_name}
        elif auth_type == "v3applicationcredential":
            auth = {"auth_url": self.auth_url, "application_credential_id": c.application_credential_id,
                    "application_credential_secret": c.application_credential_secret}
        elif auth_type == "v3oidcaccesstoken":
            auth = {"auth_url": self.auth_url, "identity_provider": c.oidc_identity_provider,
                    "protocol": c.oidc_protocol, "access_token": c.oidc_access_token,
                    "project_name": c.project_name, "project_domain_name": c.domain_name}
        else:
            raise ValueError(f"unknown auth_type {auth_type!r}: use password, "
                             "v3applicationcredential or v3oidcaccesstoken")
        return {"auth_type": auth_type, "auth": auth, "region_name": self.region_name,
                "interface": "public", "identity_api_version": 3}

    def connect(self, auth_type: str = "password", **options: Any):
        """An ``openstack.connection.Connection`` to this cloud (openstacksdk)."""
        import openstack

        entry = self.clouds_yaml_entry(auth_type)
        return openstack.connect(auth_type=entry["auth_type"], auth=entry["auth"],
                                 region_name=entry["region_name"], interface=entry["interface"],
                                 identity_api_version=3, load_yaml_config=False, load_envvars=False,
                                 **options)

    def advance_time(self, seconds: float) -> None:
        """Move the cloud clock: expires tokens, finishes builds, without sleeping."""
        self.clock.advance(seconds)
        self.compute.tick()
