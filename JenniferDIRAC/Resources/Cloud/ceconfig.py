"""CE parameters (CE and queue options merged by DIRAC) -> one typed, validated CloudCEConfig.

Every option is documented in docs/CE-OPTIONS.md. DIRAC's CloudCE options keep their
meaning; for ``CloudType = OPENSTACK`` the libcloud ``Driver_ex_*`` options of an existing DIRAC
configuration are translated to openstacksdk / keystoneauth settings (OpenStackIdentity).
Errors are ConfigurationError naming the CS option. Parsing (``CloudCEConfig.parse``) reads
nothing but its arguments; ``from_ce_parameters`` is the boundary that also reads the CS.

Over 400 lines and kept whole: it is one parse, every CE option to one CloudCEConfig, and its
checks of one option against another need the whole option set in one place.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from JenniferDIRAC.Resources.Cloud.imageselection import is_selection, parse_selection
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.model import TAG_PREFIX, OwnerTags
from JenniferDIRAC.Resources.Cloud.quotaweights import OPTION as INSTALLATION_WEIGHTS
from JenniferDIRAC.Resources.Cloud.quotaweights import parse_installation_weights
from JenniferDIRAC.Resources.Cloud.openstackidentity import DRIVER_PREFIX, OpenStackIdentity, openstack_identity
from JenniferDIRAC.Resources.Cloud.sharedlisting import FULL_RESYNC_SECONDS
from JenniferDIRAC.Resources.Cloud.optionnames import DIRAC_CE_OPTIONS, OTHER_CE_OPTIONS, unknown_option_problem

OPENSTACK = "OPENSTACK"
DEFAULT_MAX_LIFETIME = 14 * 24 * 3600  # DIRAC's CloudCE default: two weeks
DEFAULT_MAX_SUBMIT_THREADS = 8
#: Concurrent DELETEs of one bulk deletion (Nova answers one in 0.2 s and more: 779 at 8 at once
#: took 20 s of a first cycle; a steady VMDirector cycle at 5,000 VMs, 1% ended, deletes 50, in
#: one round at 64); bounded like creates
DEFAULT_MAX_DELETE_THREADS = 64
DEFAULT_CREATE_ATTEMPTS = 3
DEFAULT_HTTP_TIMEOUT = 60.0
#: One SiteDirector cycle asks a project's CEs within seconds; cycles are minutes apart.
DEFAULT_LISTING_CACHE_SECONDS = 10
#: Resolved image / flavor / network ids are resolved again after this long (sites replace images)
DEFAULT_REFERENCE_CACHE_SECONDS = 3600
#: A flavor/zone the cloud had no host for is skipped this long (like Karpenter's capacity cache)
DEFAULT_CAPACITY_CACHE_SECONDS = 300

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
    #: InstallationQuotaWeights: {other installation on the project: its weight} (quotaweights)
    installation_quota_weights: Mapping[str, float] = field(default_factory=dict)
    max_starting_vms: int | None = None
    max_submit_threads: int = DEFAULT_MAX_SUBMIT_THREADS
    max_delete_threads: int = DEFAULT_MAX_DELETE_THREADS
    create_attempts: int = DEFAULT_CREATE_ATTEMPTS
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    max_user_data_bytes: int | None = None  # None = the cloud's own limit
    #: seconds one listing / quota reading serves the CEs of the project (0 = never shared)
    listing_cache_seconds: int = DEFAULT_LISTING_CACHE_SECONDS
    #: seconds between full listings of a project listed incrementally (changes-since)
    full_resync_seconds: float = FULL_RESYNC_SECONDS
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
        return cls.parse(ce_name, params, installation, cs_installation=installation_name_from_cs())

    @classmethod
    def parse(
        cls, ce_name: str, params: Mapping[str, object], installation: str | None = None, cs_installation: str = ""
    ) -> CloudCEConfig:
        """`from_ce_parameters` without the CS: the installation name is `installation`, else the
        InstallationName option, else `cs_installation` (what the CS names).

        Parameters parsed before (the same items in the same order, the same Context_Template
        file, present or not) give back the same frozen configuration: a VMDirector cycle parses
        each CE's parameters three times. Parameters refused are parsed again each time (rare)."""
        key = _parse_key(ce_name, params, installation, cs_installation)
        if key is None:
            return _Parser(ce_name, params).build(installation, cs_installation)
        with _PARSED_LOCK:
            parsed = _PARSED.get(key)
            if parsed is not None:
                _PARSED.move_to_end(key)
                return parsed
        parsed = _Parser(ce_name, params).build(installation, cs_installation)
        with _PARSED_LOCK:
            _PARSED[key] = parsed
            while len(_PARSED) > PARSED_CONFIGURATIONS:
                _PARSED.popitem(last=False)
        return parsed


#: parses kept (CloudCEConfig.parse), the least recently used forgotten first: a process's CEs,
#: each at its CE level and its queues'
PARSED_CONFIGURATIONS = 512
_PARSED: OrderedDict[tuple, CloudCEConfig] = OrderedDict()
_PARSED_LOCK = threading.Lock()
_UNKEYED = object()


def _parse_key(ce_name: str, params: Mapping, installation: str | None, cs_installation: str) -> tuple | None:
    """What a parse of `params` depends on, hashable; None for parameters not kept (a key that
    is not a string, a value neither a string, an integer, a boolean, None nor a list or tuple
    of those: a set's order, a float's text may differ between equal values)."""
    if not ce_name:
        return None
    items = []
    for option, value in params.items():
        if type(option) is not str:
            return None
        frozen = _frozen(value)
        if frozen is _UNKEYED:
            return None
        items.append((option, frozen))
    template = None
    if "Context_Template" in params:  # a file: whether it exists is read again every time
        path = _Parser(ce_name, params).text("Context_Template")
        if path:
            path = os.path.expandvars(os.path.expanduser(path))
            template = (path, os.path.isfile(path))
    return ce_name, installation, cs_installation, template, tuple(items)


def _frozen(value):
    if type(value) is str:
        return value
    if value is None or type(value) in (bool, int):
        return type(value), value
    if type(value) in (list, tuple):
        parts = tuple(_frozen(part) for part in value)
        return _UNKEYED if any(part is _UNKEYED for part in parts) else (type(value), parts)
    return _UNKEYED


def installation_name_from_cs() -> str:
    """This DIRAC installation's name as the CS knows it ("" if the CS names none)."""
    from DIRAC import gConfig

    for path in ("/DIRAC/InstallationName", "/DIRAC/Configuration/Name"):
        value = gConfig.getValue(path, "")
        if value:
            return str(value).strip()
    return ""


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

    def number(self, option: str, convert, expected: str):
        """(the option's text, its value as `convert` reads it); ("", None) when unset. A value
        `convert` cannot read is a ConfigurationError saying what was `expected`."""
        raw = self.text(option)
        if not raw:
            return raw, None
        try:
            return raw, convert(raw)
        except ValueError:
            raise ConfigurationError(option, f"{raw!r} is not {expected}") from None

    def integer(self, option: str, default: int | None, minimum: int, maximum: int | None = None) -> int | None:
        raw, value = self.number(option, int, "an integer")
        if not raw:
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigurationError(option, f"{value} must be {bounds}")
        return value

    def seconds(self, option: str, default: float, minimum: float, maximum: float) -> float:
        raw, value = self.number(option, float, "a number of seconds (e.g. 60 or 2.5)")
        if not raw:
            return default
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
        raw, value = self.number(option, float, "a number (e.g. 3)")
        if not raw:
            return default
        if not math.isfinite(value) or value <= 0:
            raise ConfigurationError(option, f"{raw} must be a positive number")
        return value

    def fraction(self, option: str, default: float) -> float:
        def share(text: str) -> float:
            return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)

        raw, value = self.number(option, share, "a number (e.g. 0.5 or 50%)")
        if not raw:
            return default
        if not math.isfinite(value) or not 0.0 < value <= 1.0:
            raise ConfigurationError(option, f"{raw} must be a fraction in (0, 1] (e.g. 0.5 or 50%)")
        return value

    # --- the whole configuration ---------------------------------------------------------
    def build(self, installation: str | None, cs_installation: str) -> CloudCEConfig:
        clouds_yaml_cloud = self.text("CloudsYamlCloud")
        cloud_type = self.cloud_type(default=OPENSTACK if clouds_yaml_cloud else "")
        driver_options = {
            key[len(DRIVER_PREFIX):]: self.text(key)
            for key in self.params
            if isinstance(key, str) and key.startswith(DRIVER_PREFIX) and len(key) > len(DRIVER_PREFIX)
        }
        installation = (installation or self.text("InstallationName") or cs_installation).strip()
        if not installation:
            raise ConfigurationError(
                "InstallationName",
                "is not set and the CS has neither /DIRAC/InstallationName nor /DIRAC/Configuration/Name",
            )
        if len(installation) > 255:
            raise ConfigurationError("InstallationName", "is longer than 255 characters")
        openstack, ignored = (
            openstack_identity(driver_options, self.text) if cloud_type == OPENSTACK else (OpenStackIdentity(), ())
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
            max_delete_threads=self.integer("MaxDeleteThreads", DEFAULT_MAX_DELETE_THREADS, minimum=1, maximum=64),
            create_attempts=self.integer("MaxCreateAttempts", DEFAULT_CREATE_ATTEMPTS, minimum=1, maximum=10),
            http_timeout=self.seconds("HTTPTimeout", DEFAULT_HTTP_TIMEOUT, minimum=0.1, maximum=3600),
            max_user_data_bytes=self.integer("MaxUserDataBytes", None, minimum=1024),
            listing_cache_seconds=self.integer(
                "ListingCacheSeconds", DEFAULT_LISTING_CACHE_SECONDS, minimum=0, maximum=300
            ),
            full_resync_seconds=self.seconds("FullResyncSeconds", FULL_RESYNC_SECONDS, minimum=0, maximum=86400),
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
        config = self.with_installation_weights(config)
        return dataclasses.replace(config, unknown_options=self.unknown_options())

    def with_installation_weights(self, config: CloudCEConfig) -> CloudCEConfig:
        weights = parse_installation_weights(self.text(INSTALLATION_WEIGHTS), config.installation)
        if not weights:
            return config
        if config.quota_weight is None:
            raise ConfigurationError(INSTALLATION_WEIGHTS, "needs this CE's QuotaWeight to weigh against")
        others = config.others_quota_weight if self.text("OthersQuotaWeight") else 0.0
        return dataclasses.replace(config, installation_quota_weights=weights, others_quota_weight=others)

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
