"""A VM's private filesystem and the bubblewrap command that confines it.

Each VM gets a new directory (created exclusively: an existing one is refused, so nothing a
previous VM planted there is ever followed). Its root is a tmpfs holding the host's /usr
read-only, a minimal /etc of its own (``guestetc``), its own writable ``/tmp``, ``/home``,
``/var``, ``/run``, ``/opt``, ``/root``, ``/srv``, ``/mnt``, ``/media``, and read-only the host
paths it needs (the Python running LocalCloud, the paths in ``readable``); ``hidden`` paths
inside those are masked. Everything the host writes into the tree is written before the VM
starts, then handed to the VM's root (host uid ``id_base``).

It has its own PID, IPC, UTS and network namespaces, a private ``/dev``, a read-only
``/proc/sys`` and a user namespace (``enter_userns``) in which its root is an unprivileged host
uid; it reaches only the host addresses ``netbridge`` forwards and its own metadata service
(``metadata``). Its root holds CAP_NET_ADMIN only in the network namespace its user namespace
owns (made by ``enter_userns``, not by bubblewrap, which adds no capability for it).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .guestetc import build_etc

WRITABLE_DIRS = ("/tmp", "/home", "/var", "/run", "/opt", "/root", "/srv", "/mnt", "/media")
HOST_SYSTEM = "/usr"
TOP_LEVEL_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Bounding set of the sandbox. Host root holds them only in enter_userns (which needs SETUID and
# SETGID to map the VM's user namespace); the VM holds them in its own user namespace only.
KEPT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE", "CAP_SETFCAP",
)
PROTECTED_PROC = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
VM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_FILES = ("runner.py", "userdata.py", "guestnet.py", "enter_userns.py")
GUEST_TOOLS = "/var/lib/cloud/localcloud"
NET_DIR = "/run/localcloud/net"
ID_COUNT = 65536  # uids and gids 0..65535 of the VM
_FIRST_ID_BASE = 1 << 20


def new_id_base() -> int:
    """A host uid/gid range for one VM, above every ordinary host account; random, so VMs of
    several clouds on one host do not share one (they would share RLIMIT_NPROC counts)."""
    return _FIRST_ID_BASE + secrets.randbelow(1 << 14) * ID_COUNT


@dataclass
class InstanceInfo:
    """What cloud-init would learn from the OpenStack metadata service."""

    instance_id: str
    name: str
    project_id: str
    availability_zone: str
    region: str
    metadata: dict[str, str]
    user_data: bytes

    def meta_data(self) -> dict[str, Any]:
        """Nova's ``meta_data.json``: on the config-drive paths and from the metadata service."""
        return {
            "uuid": self.instance_id, "name": self.name, "hostname": hostname_for(self.name),
            "availability_zone": self.availability_zone, "project_id": self.project_id,
            "launch_index": 0, "meta": dict(self.metadata), "public_keys": {}, "keys": [],
            "devices": [],
        }


def hostname_for(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63]
    return cleaned or "localcloud-vm"


def python_paths() -> list[str]:
    """The Python running LocalCloud (and its virtualenv): the VM's guest tools run with it."""
    return sorted({str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve()),
                   str(Path(sys.executable).resolve().parent)})


class SandboxExists(RuntimeError):
    """A VM directory is never reused: whatever a previous VM left there is not to be trusted."""


class Sandbox:
    """One VM's directory on the host: ``fs/`` (its writable tree), ``net/`` (its forwarded
    addresses, host-owned) and ``console.log`` (host-owned; the VM sees neither)."""

    def __init__(self, directory: Path, id_base: int | None = None) -> None:
        self.directory = directory
        self.fs = directory / "fs"
        self.net = directory / "net"
        self.console = directory / "console.log"
        self.id_base = new_id_base() if id_base is None else id_base

    def create(self) -> None:
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            raise SandboxExists(
                f"VM directory {self.directory} already exists: refusing to reuse it") from None
        os.mkdir(self.fs, 0o755)

    def open_console(self):
        """The console file, for appending; never through a link."""
        fd = os.open(self.console, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        return os.fdopen(fd, "ab")

    def read_console(self) -> str | None:
        try:
            return self.read_bytes(self.console).decode(errors="replace")
        except FileNotFoundError:
            return None

    def read_vm_file(self, vm_path: str) -> bytes:
        """A regular file of the VM's tree, read without following any link the VM planted."""
        parts = Path(vm_path).relative_to("/").parts
        fd = os.open(self.fs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            return self.read_bytes(parts[-1], dir_fd=fd)
        finally:
            os.close(fd)

    @staticmethod
    def read_bytes(path: "str | Path", dir_fd: int | None = None) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise OSError(f"{path} is not a regular file")
            return handle.read()

    def prepare(self, info: InstanceInfo, readable: tuple[str, ...] = ()) -> None:
        """Write the VM's tree (before it runs), then give it to the VM's root."""
        for path in WRITABLE_DIRS:
            (self.fs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (self.fs / "tmp").chmod(0o1777)
        (self.fs / "root").chmod(0o711)  # users must traverse it to reach a Python under /root
        for path in self.exposed(readable):
            if not _under(path, WRITABLE_DIRS):
                continue  # bubblewrap makes its mount point in the tmpfs root
            mount_point = self.fs / path.lstrip("/")
            if Path(path).is_dir():
                mount_point.mkdir(parents=True, exist_ok=True)
            else:
                mount_point.parent.mkdir(parents=True, exist_ok=True)
                mount_point.touch(exist_ok=True)
            for parent in mount_point.parents:
                if parent == self.fs or parent.parent == self.fs:
                    break  # the top directories keep their own modes (/tmp 1777, /root 0711)
                parent.chmod(0o755)
        (self.fs / "etc").mkdir()
        build_etc(self.fs / "etc", hostname_for(info.name))
        var = self.fs / "var"
        for sub in ("tmp", "log", "spool", "cache", "lib/misc", "mail"):
            (var / sub).mkdir(parents=True, exist_ok=True)
        (var / "tmp").chmod(0o1777)
        for link, target in (("run", "/run"), ("lock", "/run/lock")):
            (var / link).symlink_to(target)
        (self.fs / "run" / "lock").mkdir()
        (self.fs / NET_DIR.lstrip("/")).mkdir(parents=True)
        self._write_instance_data(info)
        tools = self.fs / GUEST_TOOLS.lstrip("/")
        tools.mkdir(parents=True)
        for name in GUEST_FILES:
            shutil.copy(Path(__file__).with_name(name), tools / name)
        self._give_to_vm_root()

    def _give_to_vm_root(self) -> None:
        os.chown(self.fs, self.id_base, self.id_base)
        for top, dirs, files in os.walk(self.fs):
            for name in dirs + files:
                os.chown(os.path.join(top, name), self.id_base, self.id_base, follow_symlinks=False)

    @staticmethod
    def exposed(readable: tuple[str, ...]) -> list[str]:
        """Host paths the VM reads (read-only): its Python and ``readable``, outermost first."""
        paths = sorted({*python_paths(), *(str(Path(p).resolve()) for p in readable)})
        paths = [p for p in paths if not _under(p, (HOST_SYSTEM,))]
        return [p for p in paths if not any(p.startswith(other + "/") for other in paths)]

    def _write_instance_data(self, info: InstanceInfo) -> None:
        hostname = hostname_for(info.name)
        meta_data = info.meta_data()
        instance_data = {
            "v1": {
                "instance_id": info.instance_id, "local_hostname": hostname,
                "availability_zone": info.availability_zone, "region": info.region,
                "cloud_name": "openstack", "platform": "openstack",
                "subplatform": "metadata (LocalCloud)", "public_ssh_keys": [],
                "distro": "localcloud", "machine": os.uname().machine,
            },
            "ds": {"meta_data": meta_data},
        }
        run = self.fs / "run" / "cloud-init"
        run.mkdir(parents=True, exist_ok=True)
        (run / "instance-data.json").write_text(json.dumps(instance_data, indent=1, sort_keys=True))
        cloud = self.fs / "var" / "lib" / "cloud"
        instance_dir = cloud / "instances" / info.instance_id
        instance_dir.mkdir(parents=True, exist_ok=True)
        (cloud / "data").mkdir(parents=True, exist_ok=True)
        (cloud / "data" / "instance-id").write_text(info.instance_id + "\n")
        (cloud / "instance").symlink_to(f"/var/lib/cloud/instances/{info.instance_id}")
        (instance_dir / "user-data.txt").write_bytes(info.user_data)
        (instance_dir / "user-data.txt").chmod(0o600)
        (instance_dir / "meta_data.json").write_text(json.dumps(meta_data, indent=1, sort_keys=True))

    def command(self, hostname: str, readable: tuple[str, ...] = (),
                hidden: tuple[str, ...] = ()) -> list[str]:
        argv = ["bwrap", "--ro-bind", HOST_SYSTEM, HOST_SYSTEM]
        for path in TOP_LEVEL_LINKS:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        argv += ["--dev", "/dev", "--proc", "/proc"]
        # The VM's root may not change kernel settings (sysctls are global, not per namespace).
        for path in PROTECTED_PROC:
            if os.path.exists(path):
                argv += ["--ro-bind", path, path]
        for path in WRITABLE_DIRS:
            argv += ["--bind", str(self.fs / path.lstrip("/")), path]
        argv += ["--bind", str(self.fs / "etc"), "/etc"]
        exposed = self.exposed(readable)
        made = set()
        for path in exposed:
            if not _under(path, WRITABLE_DIRS + ("/etc",)):
                # bubblewrap would make the missing parents 0700: the VM's users must traverse them
                for parent in reversed(Path(path).parents[:-1]):
                    if str(parent) not in made:
                        made.add(str(parent))
                        argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", path, path]
        for path in sorted({str(Path(p).resolve()) for p in hidden}):
            if _under(path, exposed):
                argv += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
        argv += ["--ro-bind", str(self.net), NET_DIR]
        argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                 "--unshare-cgroup-try", "--hostname", hostname, "--die-with-parent",
                 "--cap-drop", "ALL"]
        for cap in KEPT_CAPABILITIES:
            argv += ["--cap-add", cap]
        argv += ["--chdir", "/", "--",
                 sys.executable, "-I", f"{GUEST_TOOLS}/enter_userns.py", str(self.id_base), str(ID_COUNT),
                 "--",
                 sys.executable, "-I", f"{GUEST_TOOLS}/runner.py", "/var/lib/cloud/instance/user-data.txt"]
        return argv


def _under(path: str, roots: "tuple[str, ...] | list[str]") -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


VM_ENV = {"PATH": VM_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root",
          "LOGNAME": "root", "SHELL": "/bin/sh"}
