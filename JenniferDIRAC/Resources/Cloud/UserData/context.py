"""What one VM needs to know about its pilot: the per-VM part of the user data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PilotContext:
    """Everything the CE knows about one VM when it renders the VM's user data."""

    pilot_reference: str  # exported as PILOT_UUID
    pilot_stamp: str  # exported as DIRAC_PILOT_STAMP
    wrapper: str  # the pilot wrapper script text (from the SiteDirector)
    vm_name: str
    ce_name: str
    site: str
    vo: str = ""
    max_lifetime: int = 172800  # seconds; the VM stops its pilot and powers off after this
    endpoint_url: str = ""  # root URL of the VM endpoint; "" = the VM reports nowhere
    endpoint_token: str = ""  # the VM's own token for the endpoint (its bootstrap token if bootstrap)
    #: The wrapper stays out of user data: the VM fetches it once with its one-time bootstrap
    #: token (endpoint_token) from the endpoint, with its report token (VMEndpoint, VMBootstrap).
    bootstrap: bool = False
    extra_packages: tuple[str, ...] = ()
    #: Exported to the pilot after the profile's PilotEnvironment (same names win here).
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Prepended to the pilot's PATH, e.g. the bin directory of a preinstalled DIRAC.
    path_prefix: str = ""
