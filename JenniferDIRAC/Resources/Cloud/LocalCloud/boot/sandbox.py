"""A VM's private filesystem and the bubblewrap command that confines it.

The host is mounted read-only; the VM gets its own writable ``/tmp``, ``/home``, ``/var``,
``/run``, ``/opt``, ``/root``, ``/srv``, ``/mnt``, ``/media`` and a copy of ``/etc`` (so
``useradd`` works and declared users exist), all kept under the VM's sandbox directory. It has
its own PID, IPC and UTS namespaces and a private ``/dev``, but shares the host network so it
can reach services on 127.0.0.1. Capabilities that could undo the confinement (mount, raw
devices, modules, ptrace, file handles) are dropped and ``/proc/sys`` is read-only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRITABLE_DIRS = ("/tmp", "/home", "/var", "/run", "/opt", "/root", "/srv", "/mnt", "/media")
KEPT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE", "CAP_SETFCAP",
)
PROTECTED_PROC = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
VM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNNER_FILES = ("runner.py", "userdata.py")
GUEST_TOOLS = "/var/lib/cloud/localcloud"


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


def hostname_for(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63]
    return cleaned or "localcloud-vm"


def _readable_host_paths() -> list[str]:
    """Host paths under a replaced directory that the VM must still read (the Python that runs
    the guest tools and the project's virtualenv, e.g. a pyenv under /root)."""
    paths = {str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve()),
             str(Path(sys.executable).resolve().parent)}
    return sorted(p for p in paths if any(p == d or p.startswith(d + "/") for d in WRITABLE_DIRS))


class Sandbox:
    """One VM's directory on the host: ``fs/`` (its writable tree) and ``console.log``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fs = directory / "fs"
        self.console = directory / "console.log"

    def prepare(self, info: InstanceInfo, readable: tuple[str, ...] = ()) -> None:
        for path in WRITABLE_DIRS:
            (self.fs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (self.fs / "tmp").chmod(0o1777)
        (self.fs / "root").chmod(0o711)  # users must traverse it to reach a Python under /root
        for path in self.exposed(readable):
            # Mount points of host paths re-exposed read-only; users must be able to traverse them.
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
        shutil.copytree("/etc", self.fs / "etc", symlinks=True, ignore_dangling_symlinks=True,
                        dirs_exist_ok=True, ignore=_unsafe_etc_entries)
        var = self.fs / "var"
        for sub in ("tmp", "log", "spool", "cache", "lib/misc", "mail"):
            (var / sub).mkdir(parents=True, exist_ok=True)
        (var / "tmp").chmod(0o1777)
        for link, target in (("run", "/run"), ("lock", "/run/lock")):
            if not (var / link).is_symlink():
                (var / link).symlink_to(target)
        (self.fs / "run" / "lock").mkdir(exist_ok=True)
        (self.fs / "etc" / "hostname").write_text(hostname_for(info.name) + "\n")
        self._write_instance_data(info)
        tools = self.fs / GUEST_TOOLS.lstrip("/")
        tools.mkdir(parents=True, exist_ok=True)
        for name in RUNNER_FILES:
            shutil.copy(Path(__file__).with_name(name), tools / name)

    @staticmethod
    def exposed(readable: tuple[str, ...]) -> list[str]:
        """Host paths to re-expose read-only that a writable VM directory would otherwise hide."""
        under_writable = [str(Path(p).resolve()) for p in readable
                          if any(str(Path(p).resolve()).startswith(d + "/") for d in WRITABLE_DIRS)]
        paths = sorted({*_readable_host_paths(), *under_writable})
        return [p for p in paths if not any(p.startswith(other + "/") for other in paths)]

    def _write_instance_data(self, info: InstanceInfo) -> None:
        hostname = hostname_for(info.name)
        meta_data: dict[str, Any] = {
            "uuid": info.instance_id, "name": info.name, "hostname": hostname,
            "availability_zone": info.availability_zone, "project_id": info.project_id,
            "launch_index": 0, "meta": dict(info.metadata), "public_keys": {}, "keys": [],
            "devices": [],
        }
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
        link = cloud / "instance"
        if not link.is_symlink():
            link.symlink_to(f"/var/lib/cloud/instances/{info.instance_id}")
        (instance_dir / "user-data.txt").write_bytes(info.user_data)
        (instance_dir / "user-data.txt").chmod(0o600)
        (instance_dir / "meta_data.json").write_text(json.dumps(meta_data, indent=1, sort_keys=True))

    def command(self, hostname: str, readable: tuple[str, ...] = ()) -> list[str]:
        argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # The VM's root may not change kernel settings (sysctls are global, not per namespace).
        for path in PROTECTED_PROC:
            if os.path.exists(path):
                argv += ["--ro-bind", path, path]
        for path in WRITABLE_DIRS:
            argv += ["--bind", str(self.fs / path.lstrip("/")), path]
        argv += ["--bind", str(self.fs / "etc"), "/etc"]
        for path in self.exposed(readable):
            argv += ["--ro-bind", path, path]
        argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", hostname,
                 "--die-with-parent", "--cap-drop", "ALL"]
        for cap in KEPT_CAPABILITIES:
            argv += ["--cap-add", cap]
        argv += ["--chdir", "/", "--",
                 sys.executable, "-I", f"{GUEST_TOOLS}/runner.py", "/var/lib/cloud/instance/user-data.txt"]
        return argv


def _unsafe_etc_entries(directory: str, names: list[str]) -> list[str]:
    """Skip sockets and fifos, which copytree cannot copy."""
    skipped = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            skipped.append(name)
            continue
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            skipped.append(name)
    return skipped


VM_ENV = {"PATH": VM_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root",
          "LOGNAME": "root", "SHELL": "/bin/sh"}
