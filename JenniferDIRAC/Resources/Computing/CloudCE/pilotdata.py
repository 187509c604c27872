"""What a VM is given to start its pilot: the user data rendered from the CE's profile (or its
Context_Template, checked against cloud-init's schema), the VM endpoint's per-VM tokens, and the
sealed bootstrap (the pilot wrapper fetched once from the endpoint instead of sitting in user
data, readable by every process of the VM)."""

from __future__ import annotations

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.model import Flavor


def cores_env(flavor: Flavor) -> dict[str, str]:
    """The pilot runs with the cores of the flavor it landed on (DIRAC's NumberOfProcessors)."""
    return {"DIRAC_NUMBER_OF_PROCESSORS": str(max(1, int(flavor.vcpus or 1)))}


def seal_bootstrap(tokens, name: str, report_token: str, wrapper: str) -> tuple[bytes, str]:
    """(sealed wrapper and report token for VMDB, the one-time token for user data)."""
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMBootstrap import bootstrap_body, seal

    bootstrap_token = tokens.issue_bootstrap(name)
    return seal(bootstrap_token, name, bootstrap_body(report_token, wrapper.encode("utf-8"))), bootstrap_token


class PilotUserData:
    def __init__(self, log, ce_name: str) -> None:
        self.log = log
        self.ce_name = ce_name
        self._no_endpoint_warned = False

    def endpoint(self, ce_parameters):
        """(URL, TokenAuthority) of the VM endpoint the VMs report to; ("", None) when none is
        configured (Context_EndpointURL / Context_TokenSecretFile, else /Resources/Cloud/Endpoint)."""
        from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import SecretFileError, TokenAuthority
        from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.settings import endpoint_settings

        settings = endpoint_settings(ce_parameters)
        if not settings.enabled:
            if not self._no_endpoint_warned:
                self._no_endpoint_warned = True
                self.log.warn(
                    "No contextualization endpoint: the pilot wrapper and its proxy go in user data, readable by"
                    " every process of the VM",
                    f"{self.ce_name}: set /Resources/Cloud/Endpoint/URL (or the CE's Context_EndpointURL)",
                )
            return "", None
        if not settings.token_secret_file:
            raise ConfigurationError("Context_TokenSecretFile", f"the VM endpoint {settings.url} needs a token secret file")
        try:
            return settings.url, TokenAuthority.from_secret_file(settings.token_secret_file)
        except SecretFileError as exc:
            raise ConfigurationError("Context_TokenSecretFile", str(exc)) from None

    @staticmethod
    def profile(config: CloudCEConfig):
        """The CE's Context_Profile (from the CS, with the shipped defaults)."""
        from JenniferDIRAC.Resources.Cloud.UserData import Profile, profile_from_cs

        name = config.context_profile
        return profile_from_cs(name) if name else Profile(name="default")

    def render(self, config: CloudCEConfig, context, profile, limit: int) -> bytes:
        """The user data of one VM, packed within the cloud's `limit` (bytes)."""
        from JenniferDIRAC.Resources.Cloud.UserData import pack_user_data, render_user_data

        text = render_user_data(context, profile, template_path=config.context_template)
        if config.context_template:
            from JenniferDIRAC.Resources.Cloud.UserData.templatecheck import check_ce_template

            # raises ConfigurationError (Context_Template) before any VM is created
            unchecked = check_ce_template(config.context_template, text, profile.name)
            if unchecked:
                self.log.warn("Context_Template not checked against cloud-init's schema", f"{self.ce_name}: {unchecked}")
        return pack_user_data(text, limit)
