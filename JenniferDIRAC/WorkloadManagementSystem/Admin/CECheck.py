"""Checks of a cloud CE's configuration against its cloud, for ``dirac-vm-check-ce``.

Each check gives a verdict (OK, WARN, FAIL, SKIP: not run because an earlier check failed), a
detail, and the CS option that fixes it. Nothing is created in the cloud: authentication and
ownership are checked with the CE's one listing call, images, flavors and networks by resolving
them, the quota by asking the CE itself how many VMs it would offer (DIRAC's ``available()``,
built as the SiteDirector builds it for the queue), user data by rendering it for a
representative pilot and validating it with cloud-init's schema.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError, CloudUnreachable, ConfigurationError

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
#: Size of the stand-in for the proxy the SiteDirector bundles into the pilot wrapper.
PROXY_STANDIN_BYTES = 6 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str
    detail: str
    option: str = ""

    def line(self) -> str:
        fix = f"  [CS option: {self.option}]" if self.option and self.verdict in (FAIL, WARN) else ""
        return f"{self.verdict:<4}  {self.name:<10}  {self.detail}{fix}"


def representative_wrapper() -> str:
    """A pilot wrapper as the SiteDirector writes it (DIRAC's own template, with an
    incompressible stand-in of a bundled proxy), to size the user data."""
    from DIRAC.WorkloadManagementSystem.Utilities.PilotWrapper import pilotWrapperScript

    proxy = base64.b64encode(secrets.token_bytes(PROXY_STANDIN_BYTES)).decode()
    return pilotWrapperScript(
        pilotFilesCompressedEncodedDict={"proxy": proxy},
        pilotOptions="-S Production -l JenniferDIRAC -e JenniferDIRAC --pilotUUID $DIRAC_PILOT_STAMP",
        location="https://pilot.example.org/pilot",
    )


def check_ce(ce_name: str, params: dict, wrapper: str | None = None) -> list[Check]:
    """All checks of one CE, in order; later checks are SKIPped when they cannot run."""
    from JenniferDIRAC.Resources.Cloud.backends import make_backend
    from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig

    checks: list[Check] = []
    try:
        config = CloudCEConfig.from_ce_parameters(ce_name, params)
    except ConfigurationError as exc:
        return [Check("config", FAIL, str(exc), exc.option)]
    checks.append(Check("config", OK, f"{config.cloud_type} CE of {config.site or '?'} for {config.vo or 'any VO'}"))
    checks += [Check("option", WARN, f"{option}: {problem}", option) for option, problem in config.unknown_options]
    checks.append(_endpoint_check(params))

    try:
        backend = make_backend(config)
    except ConfigurationError as exc:
        return checks + [Check("auth", FAIL, str(exc), exc.option)]
    try:
        checks += _cloud_checks(config, backend, wrapper, lambda: _quota_check(ce_name, params))
    finally:
        backend.close()
    return checks


def _endpoint_check(params: dict) -> Check:
    """Without a contextualization endpoint the pilot wrapper, proxy included, is in user data,
    which every process of the VM can read for the VM's whole life."""
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.settings import CS_ENDPOINT_PATH, endpoint_settings

    settings = endpoint_settings(params)
    if not settings.enabled:
        return Check("endpoint", WARN, "no contextualization endpoint: the pilot wrapper and its proxy go in user data,"
                     " readable by every process of the VM", f"{CS_ENDPOINT_PATH}/URL")
    return Check("endpoint", OK, f"VMs fetch their pilot wrapper once from {settings.url}")


def _auth_option(config) -> str:
    if getattr(config, "clouds_yaml_cloud", ""):
        return "CloudsYamlCloud"
    return "CloudAuth"


def _cloud_checks(config, backend, wrapper: str | None, quota_check) -> list[Check]:
    checks = []
    try:
        vms = backend.list_vms(config.owner())
    except CloudAuthError as exc:
        return [Check("auth", FAIL, f"authentication refused: {exc}", _auth_option(config)), *_skipped()]
    except CloudUnreachable as exc:
        option = "Driver_ex_force_auth_url" if config.is_openstack else "Driver_host"
        return [Check("auth", FAIL, f"cloud unreachable: {exc}", option), *_skipped()]
    except CloudError as exc:
        return [Check("auth", FAIL, str(exc), _auth_option(config)), *_skipped()]
    owner = config.owner()
    ours = sum(1 for vm in vms if owner.owns(vm.owner))
    checks.append(Check("auth", OK, f"authenticated; {ours} VM(s) of this CE ({owner.installation}/{owner.ce})"))

    _resolve(checks, "image", "Instance_Image", lambda: backend.resolve_image(config.image))
    flavor = None
    try:
        flavor = backend.resolve_flavor(config.flavor)
        checks.append(Check("flavor", OK, f"{flavor.name}: {flavor.vcpus} cores, {flavor.ram_mb} MB RAM"))
    except CloudError as exc:
        checks.append(Check("flavor", FAIL, f"{config.flavor}: {exc}", "Instance_Flavor"))
    if config.networks:
        _resolve(checks, "network", "Instance_Networks", lambda: ", ".join(backend.resolve_networks(list(config.networks))))
    else:
        checks.append(Check("network", OK, "none configured: the cloud's default network"))

    if flavor is None or any(check.verdict == FAIL for check in checks):
        checks.append(Check("quota", SKIP, "needs the image, flavor and networks"))
    else:
        checks.append(quota_check())
    checks.append(_user_data_check(config, backend, wrapper))
    return checks


def _skipped() -> list[Check]:
    return [Check(name, SKIP, "needs a working cloud connection") for name in
            ("image", "flavor", "network", "quota", "user-data")]


def _resolve(checks: list[Check], name: str, option: str, call) -> None:
    try:
        value = call()
    except CloudError as exc:
        checks.append(Check(name, FAIL, str(exc), option))
        return
    checks.append(Check(name, OK, f"resolved to {value}"))


#: what limited the CE's offer -> the CS option that changes it
_LIMIT_OPTIONS = {
    "QuotaShare": "QuotaShare",
    "MaxStartingVMs": "MaxStartingVMs",
    "MaxTotalJobs": "MaxTotalJobs",
    "MaxWaitingJobs": "MaxWaitingJobs",
}


def _quota_check(ce_name: str, params: dict) -> Check:
    """How many more VMs the CE itself offers now: its own available() (DIRAC's MaxTotalJobs /
    MaxWaitingJobs over the CE's getCEStatus: project quota, QuotaShare, MaxStartingVMs,
    backoff), on a CE built by DIRAC's factory from this queue's parameters."""
    from JenniferDIRAC.WorkloadManagementSystem.Admin.VMAdmin import make_ce

    result = make_ce(ce_name, params)
    if not result["OK"]:
        return Check("quota", FAIL, f"the CE cannot be built: {result['Message']}")
    ce = result["Value"]
    try:
        result = ce.available()
    finally:
        ce.shutdown()
    if not result["OK"]:
        return Check("quota", WARN, f"the CE cannot tell its capacity: {result['Message']}")
    offered, running, waiting = int(result["Value"]), result["RunningJobs"], result["WaitingJobs"]
    info = result.get("CEInfoDict", {})
    max_total, max_waiting = int(info.get("MaxTotalJobs", 0)), int(info.get("MaxWaitingJobs", 0))
    total_room, waiting_room = max_total - running - waiting, max_waiting - waiting
    limiter = "MaxWaitingJobs" if waiting_room <= total_room else "MaxTotalJobs"
    slots = result.get("CloudSlots")
    if slots is not None and slots <= min(total_room, waiting_room):
        limiter = result.get("CloudSlotsLimitedBy") or "project quota"
    detail = (f"the CE offers {max(0, offered)} more VM(s) now (limited by {limiter}; "
              f"{running} running, {waiting} starting)")
    if offered <= 0:
        return Check("quota", WARN, detail, _LIMIT_OPTIONS.get(limiter, ""))
    return Check("quota", OK, detail)


def _user_data_check(config, backend, wrapper: str | None) -> Check:
    from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
    from JenniferDIRAC.Resources.Cloud.UserData import (
        CS_PROFILES_PATH,
        CloudConfigInvalid,
        PilotContext,
        Profile,
        UserDataError,
        pack_user_data,
        profile_from_cs,
        render_user_data,
        validate_cloud_config,
    )

    option = "Context_Template" if config.context_template else "Context_Profile"
    limit = backend.max_user_data_bytes
    try:
        profile = profile_from_cs(config.context_profile) if config.context_profile else Profile(name="default")
    except ConfigurationError as exc:
        return Check("user-data", FAIL, str(exc), exc.option)
    if not config.context_template:
        option = f"{CS_PROFILES_PATH}/{profile.name}/Template"
    try:
        name = make_vm_name()
        context = PilotContext(
            pilot_reference=pilot_reference(config.ce_name, name),
            pilot_stamp=make_stamp(),
            wrapper=wrapper if wrapper is not None else representative_wrapper(),
            vm_name=name,
            ce_name=config.ce_name,
            site=config.site,
            vo=config.vo,
            max_lifetime=config.context_max_lifetime,
            extra_packages=config.context_ext_packages,
        )
        text = render_user_data(context, profile, template_path=config.context_template or None)
        packed = pack_user_data(text, limit)
    except ConfigurationError as exc:
        return Check("user-data", FAIL, str(exc), exc.option)
    except UserDataError as exc:
        return Check("user-data", FAIL, str(exc), option)
    except (OSError, ValueError, KeyError) as exc:
        return Check("user-data", FAIL, f"cannot render the user data: {exc}", option)
    template = config.context_template or profile.template_path()
    try:
        validate_cloud_config(text)
        schema = "valid cloud-config"
    except CloudConfigInvalid as exc:
        return Check("user-data", FAIL, f"template {template} renders invalid cloud-config: "
                     f"{'; '.join(exc.problems)}", option)
    except UserDataError as exc:
        return Check("user-data", WARN, f"not schema-checked: {exc}")
    how = "gzip" if packed[:2] == b"\x1f\x8b" else "plain"
    verdict, fix = (WARN, option) if len(packed) > 0.9 * limit else (OK, "")
    detail = f"{len(packed)} of {limit} bytes ({how}, {len(text)} bytes rendered), {schema}"
    return Check("user-data", verdict, detail, fix)
