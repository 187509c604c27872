#!/usr/bin/env python
"""Check contextualization profiles: render each profile's cloud-init user data for a stand-in
VM and validate it with cloud-init's schema (unknown top-level keys included). Profiles are the
shipped ones overridden and extended by /Resources/Cloud/Profiles in the CS.

--show prints each rendered document with the files it writes decoded (the VM receives them
base64-encoded). Exit codes: 0 every checked profile is valid, 1 usage error or a profile's
configuration is wrong (the message names the CS option), 2 cloud-init's validator is not
available on this host, 3 a rendered document is not valid cloud-config.

Example:
  $ dirac-vm-profile-check                       (every profile)
  $ dirac-vm-profile-check BelleII --show        (and print the rendered document)
"""
import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


def stand_in_context():
    from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
    from JenniferDIRAC.Resources.Cloud.UserData import PilotContext

    vm_name = make_vm_name()
    return PilotContext(
        pilot_reference=pilot_reference("profile-check.invalid", vm_name),
        pilot_stamp=make_stamp(),
        wrapper="#!/bin/bash\necho 'stand-in pilot wrapper'\n",
        vm_name=vm_name,
        ce_name="profile-check.invalid",
        site="CLOUD.ProfileCheck.invalid",
        max_lifetime=86400,
        endpoint_url="https://endpoint.invalid:8449",
        endpoint_token="jdv1.stand-in.0.not-a-real-token",
    )


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import Switches

    switches = Switches(show=False)
    # no short form: -s is DIRAC's own --section
    switches.flag("show", "print each rendered document, its files decoded")
    options = switches.options
    Script.registerArgument(["Profile: profile names (default: every profile)"], mandatory=False)
    VMAdmin.parse_command_line()
    names = [name for name in Script.getPositionalArgs() if name]

    from DIRAC import gConfig

    from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
    from JenniferDIRAC.Resources.Cloud.UserData import (
        CS_PROFILES_PATH,
        CloudConfigInvalid,
        UserDataError,
        load_profiles,
        render_user_data,
        validate_cloud_config,
    )
    from JenniferDIRAC.Resources.Cloud.UserData.readable import readable_cloud_config

    result = gConfig.getOptionsDictRecursively(CS_PROFILES_PATH)
    try:
        profiles = load_profiles(result["Value"] if result["OK"] else {})
    except ConfigurationError as exc:
        print(str(exc), file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)
    unknown = [name for name in names if name not in profiles]
    if unknown:
        print(f"no profile {', '.join(unknown)} (known: {', '.join(sorted(profiles))})", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)

    worst = 0
    for name in names or sorted(profiles):
        profile = profiles[name]
        try:
            text = render_user_data(stand_in_context(), profile)
        except ConfigurationError as exc:
            print(f"{name}: INVALID CONFIGURATION: {exc}")
            worst = max(worst, VMAdmin.EXIT_USAGE)
            continue
        try:
            validate_cloud_config(text)
        except CloudConfigInvalid as exc:
            print(f"{name}: INVALID CLOUD-CONFIG ({profile.template_path()}):")
            for problem in exc.problems:
                print(f"  {problem}")
            worst = max(worst, VMAdmin.EXIT_PARTIAL)
            continue
        except UserDataError as exc:
            print(str(exc), file=sys.stderr)
            DIRAC.exit(VMAdmin.EXIT_UNAVAILABLE)
        repositories = ", ".join(profile.cvmfs_repositories) or "none"
        print(f"{name}: valid ({profile.title}; {len(text.encode())} bytes; CVMFS: {repositories})")
        if options.show:
            print(readable_cloud_config(text))
    DIRAC.exit(worst)


if __name__ == "__main__":
    sys.exit(main())
