"""A VM's own minimal /etc: what its tools need, nothing of the host's secrets.

Copied from the host: an allow-list of configuration that holds no secret (account names,
PAM, login.defs, skeleton, CA bundle, resolver and locale settings). Written fresh: shadow and
gshadow with every account locked (never the host's hashes), hosts, hostname, an empty
resolv.conf (the VM has no DNS), a machine-id of its own. Not copied: shadow, gshadow, ssh host
keys, ``ssl/private``, ``sub[ug]id``, and every other entry not on the list.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path

COPIED = (
    "adduser.conf", "alternatives", "bash.bashrc", "bindresvport.blacklist", "ca-certificates.conf",
    "debian_version", "default", "deluser.conf", "environment", "ethertypes", "gai.conf", "group",
    "host.conf", "inputrc", "issue", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias",
    "localtime", "login.defs", "magic", "magic.mime", "mime.types", "mtab", "networks",
    "nsswitch.conf", "os-release", "pam.conf", "pam.d", "passwd", "profile", "profile.d",
    "protocols", "python3", "python3.11", "rpc", "security", "services", "shells", "skel",
    "ssl/certs", "ssl/openssl.cnf", "terminfo", "timezone", "xattr.conf",
)


def build_etc(target: Path, hostname: str, host_etc: Path = Path("/etc")) -> None:
    """Fill ``target`` (a new, empty directory) with the VM's /etc."""
    for name in COPIED:
        source = host_etc / name
        destination = target / name
        if not os.path.lexists(source):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            destination.symlink_to(os.readlink(source))
        elif source.is_dir():
            shutil.copytree(source, destination, symlinks=True, ignore=_special_files)
        elif source.is_file():
            shutil.copy2(source, destination)
    users = _names(target / "passwd")
    groups = _names(target / "group")
    _write(target / "shadow", "".join(f"{user}:*:19000:0:99999:7:::\n" for user in users), 0o640)
    _write(target / "gshadow", "".join(f"{group}:*::\n" for group in groups), 0o640)
    _write(target / "hostname", hostname + "\n")
    _write(target / "hosts",
           f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tip6-localhost ip6-loopback\n")
    _write(target / "resolv.conf", "# LocalCloud VM: no DNS, only the forwarded loopback addresses\n")
    _write(target / "machine-id", secrets.token_hex(16) + "\n", 0o444)


def _names(path: Path) -> list[str]:
    if not path.is_file():
        return ["root"]
    lines = path.read_text().splitlines()
    return [line.split(":", 1)[0] for line in lines if line and not line.startswith("#")]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def _special_files(directory: str, names: list[str]) -> list[str]:
    """Skip sockets, fifos and devices, which copytree cannot copy and no VM needs."""
    skipped = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            skipped.append(name)
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.append(name)
    return skipped
