#!/usr/bin/env python
"""Create or rotate the secret the VM endpoint's tokens are signed with.

Without --rotate, a new secret file is created (mode 600) and an existing one is never touched.
With --rotate, a new secret becomes the file's first line (it signs new tokens) and the old
lines are kept (tokens already handed to running VMs stay valid): remove an old line once the
longest Context_MaxLifetime has passed. The file defaults to /Resources/Cloud/Endpoint/
TokenSecretFile. The secret itself is never printed. Exit codes: 0 done, 1 usage error (or the
file exists without --rotate, or is missing with --rotate).

Example:
  $ dirac-vm-endpoint-secret /opt/dirac/etc/vm-endpoint.secret
  $ dirac-vm-endpoint-secret --rotate
"""
import os
import sys
import tempfile

import DIRAC
from DIRAC.Core.Base.Script import Script


def new_secret_line(directory: str) -> str:
    """A fresh secret line, made by VMTokens' own create_secret_file."""
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import create_secret_file

    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        path = os.path.join(scratch, "new.secret")
        create_secret_file(path)
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()


def rotate(path: str) -> int:
    """Prepend a new secret to `path`, atomically and keeping its mode 600; old lines kept."""
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import SecretFileError, read_secret_file

    try:
        kept = len(read_secret_file(path))  # refuses a missing, unreadable or too permissive file
    except SecretFileError as exc:
        print(f"Cannot rotate {path}: {exc}", file=sys.stderr)
        return 1
    with open(path, encoding="ascii") as handle:
        old = handle.read()
    directory = os.path.dirname(os.path.abspath(path))
    line = new_secret_line(directory)
    fd, scratch = tempfile.mkstemp(dir=directory, prefix=".vm-endpoint-secret.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(line + "\n" + old)
        os.replace(scratch, path)
    except BaseException:
        os.unlink(scratch)
        raise
    print(f"Rotated {path}: a new first secret, {kept} older one(s) kept until their tokens expire")
    return 0


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import Switches

    switches = Switches(rotate=False)
    switches.flag("rotate", "add a new signing secret, keep the old ones")
    options = switches.options
    Script.registerArgument("File: the secret file (default: /Resources/Cloud/Endpoint/TokenSecretFile)",
                            mandatory=False)
    _, args = VMAdmin.parse_command_line()

    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.settings import endpoint_settings

    path = (args[0] if args and args[0] else "") or endpoint_settings().token_secret_file
    if not path:
        print("Give the secret file or set /Resources/Cloud/Endpoint/TokenSecretFile", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)
    if options.rotate:
        DIRAC.exit(rotate(path))
    if os.path.lexists(path):
        print(f"{path} exists: not overwritten (use --rotate to add a new secret)", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import create_secret_file

    try:
        create_secret_file(path)
    except OSError as exc:
        print(f"Cannot create {path}: {exc.strerror}", file=sys.stderr)
        DIRAC.exit(VMAdmin.EXIT_USAGE)
    print(f"Created {path} (mode 600)")
    DIRAC.exit(VMAdmin.EXIT_OK)


if __name__ == "__main__":
    main()
