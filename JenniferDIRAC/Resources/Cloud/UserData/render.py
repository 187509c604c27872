"""Render a VM's #cloud-config user data from a Jinja2 template, a profile and a pilot context.

The template receives ``ctx`` (PilotContext), ``profile`` (Profile) and ``files``: the contents
of the files the VM needs, already built here so that every template writes the same ones:
``vm_env`` (boot settings and the endpoint token, root only), ``pilot_env`` (the pilot's
environment), ``cvmfs_local`` (CVMFS client settings), ``boot_script`` and ``wrapper``.
Filters: ``b64`` (base64 of a text), ``gzb64`` (gzip then base64), ``tojson``.
"""

from __future__ import annotations

import base64
import functools
import gzip
import re
import shlex
from pathlib import Path

import jinja2

from .context import PilotContext
from .errors import ConfigurationError, UserDataError
from .profiles import CS_PROFILES_PATH, TEMPLATES_DIR, Profile

BOOT_SCRIPT = TEMPLATES_DIR / "vm-boot.sh"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.\[\]:_-]+(/[A-Za-z0-9._~/-]*)?$")
_TOKEN = re.compile(r"^[A-Za-z0-9._-]*$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:-]*$")


def _b64(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(data).decode("ascii")


def _gzb64(text: str | bytes) -> str:
    """For ``encoding: gz+b64``: large files stay small even where the whole user data is not
    gzipped (mtime=0 keeps the output identical for identical input)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def _shell_assignments(values: dict[str, object], export: bool = False) -> str:
    prefix = "export " if export else ""
    return "".join(f"{prefix}{key}={shlex.quote(str(value))}\n" for key, value in values.items())


def _check_context(ctx: PilotContext) -> None:
    if not _HEX32.match(ctx.pilot_stamp or ""):
        raise UserDataError("pilot_stamp must be 32 lowercase hex characters")
    if not ctx.pilot_reference or any(c in ctx.pilot_reference for c in "\n\r"):
        raise UserDataError("pilot_reference is empty or has a newline")
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", ctx.vm_name or ""):
        raise UserDataError(f"vm_name {ctx.vm_name!r} is not a valid VM name")
    for name in ("ce_name", "site", "vo"):
        if any(c in getattr(ctx, name) for c in "\n\r"):
            raise UserDataError(f"{name} has a newline")
    if ctx.bootstrap and not ctx.endpoint_url:
        raise UserDataError("bootstrap needs an endpoint_url to fetch the wrapper from")
    if not ctx.bootstrap and not ctx.wrapper.strip():
        raise UserDataError("wrapper (the pilot wrapper script) is empty")
    if ctx.max_lifetime < 600:
        raise UserDataError(f"max_lifetime {ctx.max_lifetime} s is below the minimum of 600 s")
    if ctx.endpoint_url and not _URL.match(ctx.endpoint_url):
        raise UserDataError(f"endpoint_url {ctx.endpoint_url!r} is not an http(s) URL")
    if ctx.endpoint_url and not ctx.endpoint_token:
        raise UserDataError("endpoint_url is set but endpoint_token is empty")
    if not _TOKEN.match(ctx.endpoint_token or ""):
        raise UserDataError("endpoint_token has characters a token cannot have")
    for name in ctx.extra_env:
        if not _ENV_NAME.match(name) or name in ("PILOT_UUID", "DIRAC_PILOT_STAMP"):
            raise UserDataError(f"extra_env name {name!r} is not allowed")
    for package in ctx.extra_packages:
        if not _PACKAGE.match(package):
            raise UserDataError(f"extra_packages: {package!r} is not a package name")


def build_files(ctx: PilotContext, profile: Profile) -> dict[str, str]:
    """The contents of the files every template writes into the VM."""
    vm_env = {
        "JDIRAC_VM_NAME": ctx.vm_name,
        "JDIRAC_CE_NAME": ctx.ce_name,
        "JDIRAC_SITE": ctx.site,
        "JDIRAC_PROFILE": profile.name,
        "JDIRAC_ENDPOINT_URL": ctx.endpoint_url,
        "JDIRAC_ENDPOINT_TOKEN": ctx.endpoint_token,
        "JDIRAC_BOOTSTRAP": "yes" if ctx.bootstrap else "no",
        "JDIRAC_ENDPOINT_CAPATH": profile.endpoint_capath,
        "JDIRAC_HEARTBEAT_SECONDS": profile.heartbeat_seconds,
        "JDIRAC_LOG_UPLOAD_BYTES": profile.log_upload_bytes,
        "JDIRAC_MAX_LIFETIME": int(ctx.max_lifetime),
        "JDIRAC_HARD_POWEROFF": "yes" if profile.hard_poweroff else "no",
        "JDIRAC_PILOT_USER": profile.pilot_user,
        "JDIRAC_CVMFS_REPOSITORIES": " ".join(profile.cvmfs_repositories),
    }
    pilot_env: dict[str, str] = {"PILOT_UUID": ctx.pilot_reference, "DIRAC_PILOT_STAMP": ctx.pilot_stamp}
    if ctx.vo:
        pilot_env["DIRAC_VO"] = ctx.vo
    pilot_env.update(profile.pilot_environment)
    pilot_env.update(ctx.extra_env)
    pilot_text = _shell_assignments(pilot_env, export=True)
    path_prefix = ":".join(p for p in (ctx.path_prefix, profile.pilot_path_prefix) if p)
    if path_prefix:
        pilot_text += f'export PATH={shlex.quote(path_prefix)}:"$PATH"\n'
    cvmfs_local = ""
    if profile.cvmfs_repositories:
        cvmfs_local = _shell_assignments(
            {
                "CVMFS_REPOSITORIES": ",".join(profile.cvmfs_repositories),
                "CVMFS_HTTP_PROXY": profile.cvmfs_http_proxy,
                "CVMFS_QUOTA_LIMIT": profile.cvmfs_quota_mb,
                "CVMFS_CLIENT_PROFILE": "single",
            }
        )
    return {
        "vm_env": "# JenniferDIRAC VM settings (root only)\n" + _shell_assignments(vm_env),
        "pilot_env": "# JenniferDIRAC pilot environment\n" + pilot_text,
        "cvmfs_local": cvmfs_local,
        "boot_script": BOOT_SCRIPT.read_text(),
        "wrapper": "" if ctx.bootstrap else ctx.wrapper,
    }


@functools.lru_cache(maxsize=32)
def _environment(directory: Path) -> jinja2.Environment:
    # The shipped templates stay reachable, so a custom template can {% extends %} one of them.
    directories = [str(directory)] + ([str(TEMPLATES_DIR)] if directory.resolve() != TEMPLATES_DIR.resolve() else [])
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directories),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["b64"] = _b64
    env.filters["gzb64"] = _gzb64
    return env


def render_user_data(ctx: PilotContext, profile: Profile, template_path: str | Path | None = None) -> str:
    """The #cloud-config document for one VM (text, not yet packed)."""
    _check_context(ctx)
    path = Path(template_path) if template_path else profile.template_path()
    # A CE's Context_Template replaces the profile's template: errors name the option in use.
    option = "Context_Template" if template_path else f"{CS_PROFILES_PATH}/{profile.name}/Template"
    if not path.is_file():
        raise ConfigurationError(option, f"template {path} does not exist")
    try:
        template = _environment(path.parent).get_template(path.name)
        text = template.render(ctx=ctx, profile=profile, files=build_files(ctx, profile))
    except jinja2.TemplateError as exc:
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise ConfigurationError(option, f"template {path.name} failed{where}: {exc.message}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(option, f"template {path.name} is not UTF-8 text") from None
    if not text.startswith("#cloud-config\n"):
        raise ConfigurationError(option, f"template {path.name} must start with #cloud-config")
    return text
