"""Contextualization profiles: what a community's pilot VM needs (CVMFS, pilot user, environment).

Profiles live in the CS under ``/Resources/Cloud/Profiles/<Name>``. The package ships defaults
(``profiles.cfg`` next to this module: ``BelleII`` and ``T2K-HyperK``); a CS section with the same
name overrides them option by option, a new section adds a profile. A CE or queue selects one with
``Context_Profile = <Name>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diraccfg import CFG

from ..optionnames import unknown_option_problem
from .errors import ConfigurationError

CS_PROFILES_PATH = "/Resources/Cloud/Profiles"
DEFAULTS_FILE = Path(__file__).with_name("profiles.cfg")
TEMPLATES_DIR = Path(__file__).with_name("templates")
DEFAULT_TEMPLATE = "el9.cloud-config.j2"

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REPOSITORY = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)+$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:-]*$")
# PILOT_UUID and DIRAC_PILOT_STAMP are set per VM; a profile must not replace them.
_RESERVED_ENV = {"PILOT_UUID", "DIRAC_PILOT_STAMP", "HOME", "USER", "LOGNAME"}


@dataclass(frozen=True)
class Profile:
    """One contextualization profile. Field comments give the CS option name."""

    name: str
    title: str = ""  # Title
    vos: tuple[str, ...] = ()  # VO: the VOs this profile is meant for (informative)
    template: str = DEFAULT_TEMPLATE  # Template: file in the package's templates/ or absolute path
    cvmfs_repositories: tuple[str, ...] = ()  # CVMFSRepositories
    cvmfs_http_proxy: str = "auto;DIRECT"  # CVMFSHTTPProxy (CVMFS_HTTP_PROXY syntax)
    cvmfs_quota_mb: int = 20000  # CVMFSQuotaMB
    cvmfs_yum_repository: str = "https://cvmrepo.web.cern.ch/cvmrepo/yum/cvmfs/EL/$releasever/$basearch/"
    cvmfs_yum_gpgkey: str = "https://cvmrepo.web.cern.ch/cvmrepo/yum/RPM-GPG-KEY-CernVM"
    # CVMFSAptRelease: the package that adds CERN's CVMFS apt repository (debian template)
    cvmfs_apt_release: str = "https://ecsft.cern.ch/dist/cvmfs/cvmfs-release/cvmfs-release-latest_all.deb"
    pilot_user: str = "diracpilot"  # PilotUser: non-root account that runs the pilot
    pilot_environment: dict[str, str] = field(default_factory=dict)  # PilotEnvironment: NAME=value, ...
    pilot_path_prefix: str = ""  # PilotPathPrefix: prepended to the pilot's PATH (e.g. a preinstalled DIRAC)
    extra_packages: tuple[str, ...] = ()  # Packages: installed by cloud-init before the pilot
    heartbeat_seconds: int = 300  # HeartbeatSeconds
    log_upload_bytes: int = 1048576  # LogUploadBytes: tail of each log sent to the endpoint
    endpoint_capath: str = ""  # EndpointCAPath: CA directory for an https endpoint ("" = system store)
    hard_poweroff: bool = True  # HardPoweroff: schedule a system power-off at the max lifetime
    # CompressFiles: gzip the pilot wrapper and boot script inside the document (gz+b64), which
    # keeps a DIRAC wrapper with its proxy well under EC2's 16 KiB limit
    compress_files: bool = False

    def template_path(self) -> Path:
        path = Path(self.template)
        if path.is_absolute():
            return path
        return TEMPLATES_DIR / path


def _option(name: str, option: str) -> str:
    return f"{CS_PROFILES_PATH}/{name}/{option}"


def _as_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = value
    else:
        items = str(value).split(",")
    return [item.strip() for item in items if str(item).strip()]


def _as_int(name: str, option: str, value: Any, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(_option(name, option), f"{value!r} is not an integer") from None
    if number < minimum:
        raise ConfigurationError(_option(name, option), f"{number} is below the minimum {minimum}")
    return number


def _as_bool(name: str, option: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off"):
        return False
    raise ConfigurationError(_option(name, option), f"{value!r} is not a boolean (yes/no)")


def _environment(name: str, value: Any) -> dict[str, str]:
    environment = {}
    for item in _as_list(value):
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            raise ConfigurationError(_option(name, "PilotEnvironment"), f"{item!r} is not NAME=value")
        if key in _RESERVED_ENV:
            raise ConfigurationError(_option(name, "PilotEnvironment"), f"{key} is set per VM and cannot be changed")
        environment[key] = val.strip()
    return environment


_KNOWN_OPTIONS = {
    "Title",
    "VO",
    "Template",
    "CVMFSRepositories",
    "CVMFSHTTPProxy",
    "CVMFSQuotaMB",
    "CVMFSYumRepository",
    "CVMFSYumGPGKey",
    "CVMFSAptRelease",
    "PilotUser",
    "PilotEnvironment",
    "PilotPathPrefix",
    "Packages",
    "HeartbeatSeconds",
    "LogUploadBytes",
    "EndpointCAPath",
    "HardPoweroff",
    "CompressFiles",
}


def profile_from_options(name: str, options: dict[str, Any]) -> Profile:
    """A Profile from the options of its CS section; errors name the CS option."""
    if not _PROFILE_NAME.match(name):
        raise ConfigurationError(f"{CS_PROFILES_PATH}/{name}", "profile names are letters, digits and _ . -")
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        problem = unknown_option_problem(unknown[0], _KNOWN_OPTIONS, "profile option")
        raise ConfigurationError(_option(name, unknown[0]), f"{problem} (known: {', '.join(sorted(_KNOWN_OPTIONS))})")
    defaults = Profile(name=name)
    get = options.get

    repositories = tuple(_as_list(get("CVMFSRepositories", "")))
    for repository in repositories:
        if not _REPOSITORY.match(repository):
            raise ConfigurationError(_option(name, "CVMFSRepositories"), f"{repository!r} is not a repository name")
    pilot_user = str(get("PilotUser", defaults.pilot_user)).strip()
    if not _USER.match(pilot_user) or pilot_user == "root":
        raise ConfigurationError(_option(name, "PilotUser"), f"{pilot_user!r} is not a valid non-root user name")
    packages = tuple(_as_list(get("Packages", "")))
    for package in packages:
        if not _PACKAGE.match(package):
            raise ConfigurationError(_option(name, "Packages"), f"{package!r} is not a package name")
    template = str(get("Template", defaults.template)).strip()
    if not Path(template).is_absolute() and (not template or ".." in Path(template).parts):
        raise ConfigurationError(_option(name, "Template"), "give a file name in the templates directory or an absolute path")
    proxy = str(get("CVMFSHTTPProxy", defaults.cvmfs_http_proxy)).strip()
    if repositories and not proxy:
        raise ConfigurationError(_option(name, "CVMFSHTTPProxy"), "required when CVMFSRepositories is set")
    for option in ("CVMFSHTTPProxy", "CVMFSYumRepository", "CVMFSYumGPGKey", "CVMFSAptRelease", "EndpointCAPath",
                   "Title", "PilotPathPrefix"):
        if any(char in str(get(option, "")) for char in "\n\r\"'`\\"):
            raise ConfigurationError(_option(name, option), "quotes, backslashes and newlines are not allowed")

    return Profile(
        name=name,
        title=str(get("Title", name)).strip() or name,
        vos=tuple(_as_list(get("VO", ""))),
        template=template,
        cvmfs_repositories=repositories,
        cvmfs_http_proxy=proxy,
        cvmfs_quota_mb=_as_int(name, "CVMFSQuotaMB", get("CVMFSQuotaMB", defaults.cvmfs_quota_mb), 1000),
        cvmfs_yum_repository=str(get("CVMFSYumRepository", defaults.cvmfs_yum_repository)).strip(),
        cvmfs_yum_gpgkey=str(get("CVMFSYumGPGKey", defaults.cvmfs_yum_gpgkey)).strip(),
        cvmfs_apt_release=str(get("CVMFSAptRelease", defaults.cvmfs_apt_release)).strip(),
        pilot_user=pilot_user,
        pilot_environment=_environment(name, get("PilotEnvironment", "")),
        pilot_path_prefix=str(get("PilotPathPrefix", "")).strip(),
        extra_packages=packages,
        heartbeat_seconds=_as_int(name, "HeartbeatSeconds", get("HeartbeatSeconds", defaults.heartbeat_seconds), 10),
        log_upload_bytes=_as_int(name, "LogUploadBytes", get("LogUploadBytes", defaults.log_upload_bytes), 1024),
        endpoint_capath=str(get("EndpointCAPath", "")).strip(),
        hard_poweroff=_as_bool(name, "HardPoweroff", get("HardPoweroff", "yes")),
        compress_files=_as_bool(name, "CompressFiles", get("CompressFiles", "no")),
    )


def shipped_profile_options() -> dict[str, dict[str, str]]:
    """The options of the profiles shipped with the package, by profile name."""
    cfg = CFG().loadFromFile(str(DEFAULTS_FILE))
    return {name: dict(options) for name, options in cfg.getAsDict().get("Profiles", {}).items()}


def load_profiles(cs_profiles: dict[str, Any] | None = None) -> dict[str, Profile]:
    """All profiles: shipped defaults overridden option by option by `cs_profiles`.

    `cs_profiles` is the content of ``/Resources/Cloud/Profiles`` as a dict of sections
    (``gConfig.getOptionsDictRecursively``); a profile section must hold only options.
    """
    merged = shipped_profile_options()
    for name, options in (cs_profiles or {}).items():
        if not isinstance(options, dict):
            raise ConfigurationError(f"{CS_PROFILES_PATH}/{name}", "must be a section, not an option")
        for option, value in options.items():
            if isinstance(value, dict):
                raise ConfigurationError(_option(name, option), "profiles have no subsections")
        merged[name] = {**merged.get(name, {}), **options}
    return {name: profile_from_options(name, options) for name, options in merged.items()}


def get_profile(name: str, cs_profiles: dict[str, Any] | None = None) -> Profile:
    """The profile `name`; ConfigurationError naming Context_Profile if there is none."""
    profiles = load_profiles(cs_profiles)
    if name not in profiles:
        raise ConfigurationError(
            "Context_Profile", f"no profile {name!r} (known: {', '.join(sorted(profiles))}; define it in {CS_PROFILES_PATH})"
        )
    return profiles[name]


def profile_from_cs(name: str) -> Profile:
    """The profile `name` from the CS (``/Resources/Cloud/Profiles``) over the shipped defaults."""
    from DIRAC import gConfig

    result = gConfig.getOptionsDictRecursively(CS_PROFILES_PATH)
    cs_profiles = result["Value"] if result["OK"] else {}
    return get_profile(name, cs_profiles)
