"""Cloud-init user data for pilot VMs: profiles, rendering, size limits, schema check."""

from .context import PilotContext
from .errors import CloudConfigInvalid, UserDataError, UserDataTooLarge
from .packing import pack_user_data
from .profiles import CS_PROFILES_PATH, Profile, get_profile, load_profiles, profile_from_cs
from .render import render_user_data
from .schema import validate_cloud_config

__all__ = [
    "CS_PROFILES_PATH",
    "CloudConfigInvalid",
    "PilotContext",
    "Profile",
    "UserDataError",
    "UserDataTooLarge",
    "get_profile",
    "load_profiles",
    "pack_user_data",
    "profile_from_cs",
    "render_user_data",
    "validate_cloud_config",
]
