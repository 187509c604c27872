"""CE parameters (CE and queue options merged by DIRAC) -> one typed, validated CloudCEConfig.

Every option is documented in the CE module docstring
(JenniferDIRAC/Resources/Computing/CloudComputingElement.py). DIRAC's CloudCE options keep their
meaning; for ``CloudType = OPENSTACK`` the libcloud ``Driver_ex_*`` options of an existing DIRAC
configuration are translated to openstacksdk / keystoneauth settings (OpenStackIdentity).
Errors are ConfigurationError naming the CS option.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from JenniferDIRAC.Resources.Cloud.imageselection import is_selection, parse_selection
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.model import TAG_PREFIX, OwnerTags
from JenniferDIRAC.Resources.Cloud.optionnames import unknown_option_problem

OPENSTACK = "OPENSTACK"
DRIVER_PREFIX = "Driver_"
DEFAULT_MAX_LIFETIME = 14 * 24 * 3600  # DIRAC's CloudCE default: two weeks
DEFAULT_MAX_SUBMIT_THREADS = 8
DEFAULT_CREATE_ATTEMPTS = 3
DEFAULT_HTTP_TIMEOUT = 60.0
#: One SiteDirector cycle asks a project's CEs within seconds; cycles are minutes apart.
DEFAULT_LISTING_CACHE_SECONDS = 10
#: Resolved image / flavor / network ids are resolved again after this long (sites replace images)
DEFAULT_REFERENCE_CACHE_SECONDS = 3600
#: A flavor/zone the cloud had no host for is skipped this long (like Karpenter's capacity cache)
DEFAULT_CAPACITY_CACHE_SECONDS = 300

#: libcloud's ``ex_force_auth_version`` -> keystoneauth auth type it implies.
_AUTH_VERSIONS = {
    "3.x_password": "password",
    "3.x_appcred": "v3applicationcredential",
    "3.x_oidc_access_token": "v3oidcaccesstoken",
    "2.0_password": "password",
    "2.0": "password",
}
#: Driver_ options of DIRAC's OpenStack configurations that the translation consumes.
_TRANSLATED_DRIVER_OPTIONS = {
    "ex_force_auth_url",
    "ex_force_auth_version",
    "ex_tenant_name",
    "ex_tenant_id",
    "ex_domain_name",
    "ex_tenant_domain_id",
    "ex_force_service_region",
    "ex_force_base_url",
    "ex_force_microversion",
    "ex_force_service_type",
    "ex_force_service_name",
}
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")

#: Nova refuses a server with more metadata items (``Maximum number of metadata items exceeds
#: 128``, the default ``metadata_items`` quota) or a metadata value / name longer than 255.
MAX_METADATA_ITEMS = 128
MAX_NOVA_TEXT = 255
#: Metadata items JenniferDIRAC itself writes on a VM at most (one per owner tag).
OWNER_METADATA_ITEMS = len(dataclasses.fields(OwnerTags))
#: Nova's rule for names (key pairs, security groups, availability zones): printable, no
#: leading or trailing white space.
_NOVA_NAME = re.compile(r"^(?!\s)[^\x00-\x1f\x7f]{1,255}(?<!\s)$")

#: DIRAC's own options that reach a CE's parameters: CE and queue options of the CS
#: (ComputingElement, SiteDirector, getQueuesResolved, the pilot and job matching), and what
#: DIRAC adds itself. Never reported as unknown.
DIRAC_CE_OPTIONS = frozenset(
    {
        # added by DIRAC (getQueues / getQueuesResolved, the SiteDirector, ComputingElement)
        "CEType", "Site", "GridCE", "Queue", "QueueName", "CEName", "Community", "VO",
        "VirtualOrganization", "GridEnv", "Setup", "CPUTime", "JobExecDir", "OwnerDN", "OwnerGroup",
        "DIRACVersion", "ReleaseVersion", "ReleaseProject", "ProcessorsInUse",
        # CE and queue options of DIRAC's CS (Resources/Sites/<Grid>/<Site>/CEs/<CE>[/Queues/<Q>])
        "architecture", "Architecture", "OS", "Platform", "SubmissionMode", "LocalCEType", "LocalSE",
        "Tag", "Tags", "RequiredTag", "RequiredTags", "MaxRAM", "NumberOfProcessors",
        "maxNumberOfProcessors", "NumberOfGPUs", "WholeNode", "MultiProcessorStrategy", "maxCPUTime",
        "SI00", "CPUNormalizationFactor", "CPUScalingFactor", "MaxTotalJobs", "MaxWaitingJobs",
        "WaitingToRunningRatio", "BundleProxy", "ExtraPilotOptions", "GenericOptions",
        "PilotRunDirectory", "SharedArea", "WorkingDirectory", "WorkArea", "InfoArea",
        "ExecutableArea", "Preamble", "SubmissionPolicy", "Timeout", "RemoveOutput", "KeepWorkArea",
        "DaysToKeepLogs", "DaysToKeepRemoteLogs", "PilotBenchmark", "LogLevel", "Name",
        "MaxCPUTime", "MaxCPUTimeNormalized", "CPUPower", "MaxProcessors", "RequiredRAM",
        "ContainerRoot", "ContainerBind", "ContainerOptions", "InstallDIRACInContainer",
        "InnerCESubmissionType", "AsyncSubmission", "AlwaysIncludeProxy", "JobType",
        "Accounting", "Monitoring", "UserEnvVariables", "EnvironmentVariables",
    }
)
#: Options this CE reads outside the CE-parameter parser (VM endpoint settings).
OTHER_CE_OPTIONS = frozenset({"Context_EndpointURL", "Context_TokenSecretFile"}) | frozenset(
    {  # the VMDirector's per-CE / per-queue overrides (Agent/VMDirector.py); LostPilotGrace also the CE's
        "BootTimeout", "ZombieGrace", "OrphanGrace", "LostPilotGrace", "HeartbeatTimeout", "FizzleSeconds",
        "BackoffSeconds", "DeletingTimeout", "MaxLifetime", "HS06PerCore",
    }
)


@dataclass(frozen=True)
class OpenStackIdentity:
    """Non-secret keystoneauth / openstacksdk settings of an OpenStack CE."""

    auth_url: str = ""
    #: auth type implied by Driver_ex_force_auth_version ("" = let the CloudAuth file decide)
    auth_type: str = ""
    project_name: str = ""
    project_id: str = ""
    project_domain_name: str = ""
    project_domain_id: str = ""
    user_domain_name: str = ""
    protocol: str = ""  # OIDC federation protocol (DIRAC: Driver_ex_tenant_name with 3.x_oidc_access_token)
    region_name: str = ""
    interface: str = ""
    compute_endpoint_override: str = ""
    compute_api_version: str = ""

    def identity(self) -> dict[str, str]:
        """The keystoneauth identity keys that are set (what credentials.openstack_auth_plugin
        takes as `identity`)."""
        keys = (
            "auth_url",
            "project_name",
            "project_id",
            "project_domain_name",
            "project_domain_id",
            "user_domain_name",
            "protocol",
        )
        return {key: getattr(self, key) for key in keys if getattr(self, key)}


@dataclass(frozen=True)
class CloudCEConfig:
    ce_name: str
    cloud_type: str  # "OPENSTACK", a libcloud Provider name (upper case) or a dotted driver class
    installation: str
    image: str  # id or "name:<name>"
    flavor: str  # id or "name:<name>"
    networks: tuple[str, ...] = ()
    ssh_key: str | None = None
    security_groups: tuple[str, ...] = ()
    availability_zone: str | None = None
    #: Instance_Flavor / Instance_AvailabilityZone in order of preference (the first ones above)
    flavors: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    #: seconds a (cloud, flavor, zone) that had no capacity is skipped
    capacity_cache_seconds: int = DEFAULT_CAPACITY_CACHE_SECONDS
    extra_metadata: Mapping[str, str] = field(default_factory=dict)
    config_drive: bool = False
    driver_options: Mapping[str, str] = field(default_factory=dict)  # Driver_* without the prefix
    cloud_auth: str = ""  # CloudAuth ini path ("" = DIRAC's default <rootPath>/etc/cloud.auth)
    clouds_yaml_cloud: str = ""
    clouds_yaml_file: str = ""
    region: str = ""
    ca_certificates: str = ""
    openstack: OpenStackIdentity = field(default_factory=OpenStackIdentity)
    #: Driver_ options an OpenStack CE cannot honour through openstacksdk (the CE warns)
    ignored_driver_options: tuple[str, ...] = ()
    context_template: str | None = None
    context_ext_packages: tuple[str, ...] = ()
    context_max_lifetime: int = DEFAULT_MAX_LIFETIME
    context_profile: str = ""
    quota_share: float = 1.0
    #: QuotaWeight of this CE against OthersQuotaWeight of everything else on the project
    #: (None: no lending policy, QuotaShare alone)
    quota_weight: float | None = None
    others_quota_weight: float = 1.0
    max_starting_vms: int | None = None
    max_submit_threads: int = DEFAULT_MAX_SUBMIT_THREADS
    create_attempts: int = DEFAULT_CREATE_ATTEMPTS
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    max_user_data_bytes: int | None = None  # None = the cloud's own limit
    #: seconds one listing / quota reading serves the CEs of the project (0 = never shared)
    listing_cache_seconds: int = DEFAULT_LISTING_CACHE_SECONDS
    #: seconds a resolved image / flavor / network id is used before it is resolved again
    reference_cache_seconds: int = DEFAULT_REFERENCE_CACHE_SECONDS
    #: libcloud clouds without a quota API: caps standing in for one (None = unlimited)
    max_instances: int | None = None
    max_cores: int | None = None
    max_ram_mb: int | None = None
    site: str = ""
    vo: str = ""
    #: (option, problem) of each option no one reads: a misspelling, warned about by the CE
    unknown_options: tuple[tuple[str, str], ...] = ()

    @property
    def is_openstack(self) -> bool:
        return self.cloud_type == OPENSTACK

    def owner(self, stamp: str = "") -> OwnerTags:
        """The owner tags of this CE's VMs (with one VM's stamp, if given)."""
        return OwnerTags(
            installation=self.installation,
            ce=self.ce_name,
            vo=self.vo,
            stamp=stamp,
            profile=self.context_profile,
            site=self.site,
        )

    @classmethod
    def from_ce_parameters(
        cls, ce_name: str, params: Mapping[str, object], installation: str | None = None
    ) -> CloudCEConfig:
        """Build and validate the configuration of CE `ce_name` from its DIRAC ceParameters.

        `installation` overrides the InstallationName option; without either, the installation
        name comes from the CS (/DIRAC/InstallationName, then /DIRAC/Configuration/Name).
        """
        return _Parser(ce_name, params).build(installation)


def installation_name_from_cs() -> str:
    """This DIRAC installation's name as the CS knows it ("" if the CS names none)."""
    from DIRAC import gConfig

    for path in ("/DIRAC/InstallationName", "/DIRAC/Configuration/Name"):
        value = gConfig.getValue(path, "")
        if value:
            return str(value).strip()
    return ""


def default_cloud_auth_path() -> str:
    from DIRAC import rootPath

    return os.path.join(rootPath, "etc", "cloud.auth")


class _Parser:
    def __init__(self, ce_name: str, params: Mapping[str, object]):
        if not ce_name:
            raise ConfigurationError("CE", "the CE has no name")
        self.ce_name = ce_name
        self.params = params
        self.consulted: set[str] = set()  # every option the parser asked for, set or not

    def get(self, option: str):
        self.consulted.add(option)
        return self.params.get(option)

    # --- typed accessors, each naming its option in errors -------------------------------
    def text(self, option: str, default: str = "") -> str:
        value = self.get(option)
        if value is None:
            return default
        if isinstance(value, (list, tuple, set)):
            value = ",".join(str(v) for v in value)
        value = str(value).strip()
        return value if value else default

    def required(self, option: str) -> str:
        value = self.text(option)
        if not value:
            raise ConfigurationError(option, "is required")
        return value

    def items(self, option: str) -> tuple[str, ...]:
        value = self.get(option)
        if value is None:
            return ()
        if isinstance(value, (list, tuple, set)):
            parts = [str(v) for v in value]
        else:
            parts = str(value).split(",")
        return tuple(p.strip() for p in parts if p.strip())

    def integer(self, option: str, default: int | None, minimum: int, maximum: int | None = None) -> int | None:
        raw = self.text(option)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(option, f"{raw!r} is not an integer") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigurationError(option, f"{value} must be {bounds}")
        return value

    def seconds(self, option: str, default: float, minimum: float, maximum: float) -> float:
        raw = self.text(option)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(option, f"{raw!r} is not a number of seconds (e.g. 60 or 2.5)") from None
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise ConfigurationError(option, f"{raw} must be between {minimum:g} and {maximum:g} seconds")
        return value

    def boolean(self, option: str, default: bool) -> bool:
        raw = self.text(option).lower()
        if not raw:
            return default
        if raw in ("true", "yes", "y", "1", "on"):
            return True
        if raw in ("false", "no", "n", "0", "off"):
            return False
        raise ConfigurationError(option, f"{raw!r} is not a boolean (use True or False)")

    def weight(self, option: str, default: float | None) -> float | None:
        raw = self.text(option)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(option, f"{raw!r} is not a number (e.g. 3)") from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigurationError(option, f"{raw} must be a positive number")
        return value

    def fraction(self, option: str, default: float) -> float:
        raw = self.text(option)
        if not raw:
            return default
        percent = raw.endswith("%")
        try:
            value = float(raw[:-1] if percent else raw)
        except ValueError:
            raise ConfigurationError(option, f"{raw!r} is not a number (e.g. 0.5 or 50%)") from None
        if percent:
            value /= 100.0
        if not math.isfinite(value) or not 0.0 < value <= 1.0:
            raise ConfigurationError(option, f"{raw} must be a fraction in (0, 1] (e.g. 0.5 or 50%)")
        return value

    # --- the whole configuration ---------------------------------------------------------
    def build(self, installation: str | None) -> CloudCEConfig:
        clouds_yaml_cloud = self.text("CloudsYamlCloud")
        cloud_type = self.cloud_type(default=OPENSTACK if clouds_yaml_cloud else "")
        driver_options = {
            key[len(DRIVER_PREFIX):]: self.text(key)
            for key in self.params
            if isinstance(key, str) and key.startswith(DRIVER_PREFIX) and len(key) > len(DRIVER_PREFIX)
        }
        installation = (installation or self.text("InstallationName") or installation_name_from_cs()).strip()
        if not installation:
            raise ConfigurationError(
                "InstallationName",
                "is not set and the CS has neither /DIRAC/InstallationName nor /DIRAC/Configuration/Name",
            )
        if len(installation) > 255:
            raise ConfigurationError("InstallationName", "is longer than 255 characters")
        openstack, ignored = (
            self.openstack_identity(driver_options) if cloud_type == OPENSTACK else (OpenStackIdentity(), ())
        )
        template = self.text("Context_Template") or None
        if template:
            template = os.path.expandvars(os.path.expanduser(template))
            if not os.path.isfile(template):
                raise ConfigurationError("Context_Template", f"file {template} does not exist")
        vo = self.text("Community") or (self.items("VO") or ("",))[0]
        config = CloudCEConfig(
            ce_name=self.ce_name,
            cloud_type=cloud_type,
            installation=installation,
            image=self.reference("Instance_Image", self.required("Instance_Image")),
            flavor=self.reference("Instance_Flavor", self.required("Instance_Flavor").split(",")[0].strip()),
            flavors=tuple(self.reference("Instance_Flavor", f) for f in self.items("Instance_Flavor")),
            availability_zones=self.items("Instance_AvailabilityZone"),
            capacity_cache_seconds=self.integer(
                "CapacityCacheSeconds", DEFAULT_CAPACITY_CACHE_SECONDS, minimum=0, maximum=86400
            ),
            networks=tuple(self.reference("Instance_Networks", n) for n in self.items("Instance_Networks")),
            ssh_key=self.text("Instance_SSHKey") or None,
            security_groups=self.items("Instance_SecurityGroups"),
            availability_zone=(self.items("Instance_AvailabilityZone") or (None,))[0],
            extra_metadata=self.metadata(),
            config_drive=self.boolean("Instance_ConfigDrive", False),
            driver_options=driver_options,
            cloud_auth=self.text("CloudAuth"),
            clouds_yaml_cloud=clouds_yaml_cloud,
            clouds_yaml_file=self.text("CloudsYamlFile"),
            region=self.text("Region") or openstack.region_name,
            ca_certificates=self.text("CACertificates"),
            openstack=openstack,
            ignored_driver_options=ignored,
            context_template=template,
            context_ext_packages=self.items("Context_ExtPackages"),
            context_max_lifetime=self.integer("Context_MaxLifetime", DEFAULT_MAX_LIFETIME, minimum=60),
            context_profile=self.text("Context_Profile"),
            quota_share=self.fraction("QuotaShare", 1.0),
            quota_weight=self.weight("QuotaWeight", None),
            others_quota_weight=self.weight("OthersQuotaWeight", 1.0),
            max_starting_vms=self.integer("MaxStartingVMs", None, minimum=1),
            max_submit_threads=self.integer("MaxSubmitThreads", DEFAULT_MAX_SUBMIT_THREADS, minimum=1, maximum=64),
            create_attempts=self.integer("MaxCreateAttempts", DEFAULT_CREATE_ATTEMPTS, minimum=1, maximum=10),
            http_timeout=self.seconds("HTTPTimeout", DEFAULT_HTTP_TIMEOUT, minimum=0.1, maximum=3600),
            max_user_data_bytes=self.integer("MaxUserDataBytes", None, minimum=1024),
            listing_cache_seconds=self.integer(
                "ListingCacheSeconds", DEFAULT_LISTING_CACHE_SECONDS, minimum=0, maximum=300
            ),
            reference_cache_seconds=self.integer(
                "ReferenceCacheSeconds", DEFAULT_REFERENCE_CACHE_SECONDS, minimum=0, maximum=7 * 86400
            ),
            max_instances=self.integer("Quota_MaxInstances", None, minimum=0),
            max_cores=self.integer("Quota_MaxCores", None, minimum=0),
            max_ram_mb=self.integer("Quota_MaxRAMMB", None, minimum=0),
            site=self.text("Site"),
            vo=vo,
        )
        self.check_cloud_limits(config)
        return dataclasses.replace(config, unknown_options=self.unknown_options())

    def unknown_options(self) -> tuple[tuple[str, str], ...]:
        """Options nobody reads (DIRAC's own and Driver_* aside), each with its closest known name."""
        known = self.consulted | DIRAC_CE_OPTIONS | OTHER_CE_OPTIONS
        unknown = sorted(
            key for key in self.params
            if isinstance(key, str) and key not in known and not key.startswith(DRIVER_PREFIX)
        )
        return tuple((key, unknown_option_problem(key, known, "CE option (ignored)")) for key in unknown)

    def check_cloud_limits(self, config: CloudCEConfig) -> None:
        """What Nova would refuse at every create: refused here once, naming the option."""
        for option, value in (
            ("CE", config.ce_name),
            ("Site", config.site),
            ("Community" if self.text("Community") else "VO", config.vo),
            ("Context_Profile", config.context_profile),
        ):
            if len(value) > MAX_NOVA_TEXT:
                raise ConfigurationError(
                    option, f"is {len(value)} characters: VM metadata values are at most {MAX_NOVA_TEXT}"
                )
        items = len(config.extra_metadata) + OWNER_METADATA_ITEMS
        if items > MAX_METADATA_ITEMS:
            raise ConfigurationError(
                "Instance_Metadata",
                f"{len(config.extra_metadata)} items plus JenniferDIRAC's {OWNER_METADATA_ITEMS} exceed the "
                f"cloud's limit of {MAX_METADATA_ITEMS} metadata items per VM",
            )
        names = [("Instance_SSHKey", config.ssh_key or ""), ("Instance_AvailabilityZone", config.availability_zone or "")]
        names += [("Instance_AvailabilityZone", zone) for zone in config.availability_zones]
        names += [("Instance_SecurityGroups", group) for group in config.security_groups]
        for option, name in names:
            if name and not _NOVA_NAME.match(name):
                raise ConfigurationError(
                    option, f"{name[:60]!r} is not a valid name (1 to {MAX_NOVA_TEXT} printable characters, "
                    "no leading or trailing space)"
                )

    def cloud_type(self, default: str) -> str:
        raw = self.text("CloudType", default)
        if not raw:
            raise ConfigurationError("CloudType", "is required (OPENSTACK, EC2, ... or a driver class path)")
        if "." in raw:
            module, _, cls_name = raw.rpartition(".")
            if not module or not cls_name.isidentifier():
                raise ConfigurationError("CloudType", f"{raw!r} is not a module.ClassName driver path")
            return raw
        name = raw.upper()
        if name == OPENSTACK:
            return name
        from libcloud.compute.types import Provider

        if not hasattr(Provider, name):
            raise ConfigurationError("CloudType", f"{raw!r} is not a libcloud compute provider")
        from JenniferDIRAC.Resources.Cloud.drivers import refuse_unsupported

        refuse_unsupported(name)  # GCE, OPENNEBULA, ...: no driver profile, refused here
        return name

    @staticmethod
    def reference(option: str, value: str) -> str:
        if value.startswith("name:") and not value[5:].strip():
            raise ConfigurationError(option, f"{value!r} names nothing after 'name:'")
        if is_selection(value):
            if option != "Instance_Image":
                raise ConfigurationError(option, "'select:' chooses images only")
            parse_selection(value, option)
        return value

    def metadata(self) -> dict[str, str]:
        metadata: dict[str, str] = {}
        for item in self.items("Instance_Metadata"):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not _METADATA_KEY.match(key):
                raise ConfigurationError("Instance_Metadata", f"{item!r} is not key=value")
            if key.startswith(TAG_PREFIX):
                raise ConfigurationError("Instance_Metadata", f"key {key!r}: the {TAG_PREFIX} prefix is reserved")
            if len(value) > 255:
                raise ConfigurationError("Instance_Metadata", f"value of {key!r} is longer than 255 characters")
            metadata[key] = value
        return metadata

    def openstack_identity(self, driver: dict[str, str]) -> tuple[OpenStackIdentity, tuple[str, ...]]:
        """Translate DIRAC's libcloud OpenStack options; explicit new options win."""
        auth_version = driver.get("ex_force_auth_version", "")
        auth_type = ""
        if auth_version:
            auth_type = _AUTH_VERSIONS.get(auth_version, "")
            if not auth_type:
                raise ConfigurationError(
                    "Driver_ex_force_auth_version",
                    f"{auth_version!r} is not supported (use one of {', '.join(_AUTH_VERSIONS)})",
                )
        auth_url = driver.get("ex_force_auth_url", "")
        if auth_url:
            auth_url = _keystone_url(auth_url, auth_version)
        project_name = driver.get("ex_tenant_name", "")
        project_id = driver.get("ex_tenant_id", "")
        user_domain = driver.get("ex_domain_name", "")
        protocol = ""
        if auth_type == "v3oidcaccesstoken":
            # libcloud's OIDC connection reuses its options: ex_tenant_name is the federation
            # protocol and ex_domain_name selects the project (by name or id).
            protocol, project_name, user_domain = project_name, "", ""
            target = driver.get("ex_domain_name", "")
            if _HEX_ID.match(target):
                project_id = project_id or target
            else:
                project_name = target
        ignored = tuple(
            sorted(
                DRIVER_PREFIX + key
                for key in driver
                if key not in _TRANSLATED_DRIVER_OPTIONS or key in ("ex_force_service_type", "ex_force_service_name")
            )
        )
        identity = OpenStackIdentity(
            auth_url=self.text("AuthURL") or auth_url,
            auth_type=auth_type,
            project_name=self.text("ProjectName") or project_name,
            project_id=self.text("ProjectID") or project_id,
            project_domain_name=self.text("ProjectDomainName"),
            project_domain_id=self.text("ProjectDomainID") or driver.get("ex_tenant_domain_id", ""),
            user_domain_name=self.text("UserDomainName") or user_domain,
            protocol=self.text("Protocol") or protocol,
            region_name=self.text("Region") or driver.get("ex_force_service_region", ""),
            interface=self.text("Interface"),
            compute_endpoint_override=driver.get("ex_force_base_url", ""),
            compute_api_version=driver.get("ex_force_microversion", ""),
        )
        if identity.auth_url:
            parts = urlsplit(identity.auth_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                option = "AuthURL" if self.text("AuthURL") else "Driver_ex_force_auth_url"
                raise ConfigurationError(option, f"{identity.auth_url!r} is not an http(s) URL")
        return identity, ignored


def _keystone_url(url: str, auth_version: str) -> str:
    """libcloud takes Keystone's root URL and appends /v3/auth/tokens itself; keystoneauth wants
    the versioned identity endpoint. Keystone v2 is gone from OpenStack (Queens): a v2 setting
    is served by the same Keystone's v3."""
    parts = urlsplit(url.strip())
    path = re.sub(r"/v2\.0$", "", parts.path.rstrip("/"))
    if not path.endswith("/v3"):
        path += "/v3"
    return urlunsplit(parts._replace(path=path))
