"""Runs inside a LocalCloud VM sandbox: the subset of cloud-init the project's user data uses.

Stages, in cloud-init's order: bootcmd and boothooks; write_files; groups and users;
(other config modules are logged as skipped); deferred write_files; user scripts and runcmd;
power_state. Everything prints to stdout, which is the VM's console. Usage::

    python runner.py /var/lib/cloud/instance/user-data.txt

Before the user data, the host addresses the cloud forwards to this VM and its metadata service
start answering on its loopback (``guestnet``), and the metadata service is read once, as
cloud-init's OpenStack datasource does. This file is executed by path inside the sandbox, so it imports only
the stdlib, PyYAML and its siblings ``userdata.py`` and ``guestnet.py``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guestnet  # noqa: E402
from userdata import Script, parse  # noqa: E402

HANDLED = {"bootcmd", "write_files", "users", "groups", "runcmd", "power_state", "final_message",
           "hostname", "fqdn", "preserve_hostname", "manage_etc_hosts", "merge_how", "merge_type"}
SCRIPTS_DIR = Path("/var/lib/cloud/instance/scripts")
OUTPUT_LOG = Path("/var/log/cloud-init-output.log")
METADATA_ADDRESS = ("169.254.169.254", 80)


class OutputTee:
    """Like cloud-init's ``output: {all: '| tee -a /var/log/cloud-init-output.log'}``: everything
    on fd 1 and 2 (ours and our children's) goes to the console and to the log file."""

    def __init__(self, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._console = os.dup(1)
        self._log = open(log_path, "ab", buffering=0)
        self._read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            chunk = os.read(self._read, 65536)
            if not chunk:
                return
            os.write(self._console, chunk)
            self._log.write(chunk)

    def close(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.close(1)
        os.close(2)
        # A background process may still hold the pipe; the power-off ends it anyway.
        self._thread.join(timeout=1.0)


def read_datasource() -> str:
    """What cloud-init's OpenStack datasource would log: which instance the metadata service says
    this is (the user data itself is already on the instance's disk, as with a config drive)."""
    url = f"http://{METADATA_ADDRESS[0]}/openstack/latest/meta_data.json"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            uuid = json.loads(response.read(1 << 20))["uuid"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"datasource: metadata service {url} failed: {exc}"
    return f"datasource: OpenStack metadata service at {METADATA_ADDRESS[0]}, instance {uuid}"


def say(message: str) -> None:
    print(f"[cloud-init] {message}", flush=True)


def run_command(command: Any, label: str) -> int:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(c) for c in command]
    code = subprocess.call(argv, stdin=subprocess.DEVNULL)
    if code != 0:
        say(f"{label}: command {shlex.join(argv)!r} exited with {code}")
    return code


def run_script(script: Script, label: str) -> int:
    SCRIPTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCRIPTS_DIR / script.name.replace("/", "_")
    path.write_bytes(script.content)
    path.chmod(0o700)
    say(f"{label}: running {path}")
    try:
        code = subprocess.call([str(path)], stdin=subprocess.DEVNULL)
    except OSError as exc:
        say(f"{label}: cannot run {path}: {exc}")
        return 1
    if code != 0:
        say(f"{label}: {path} exited with {code}")
    return code


def decode_content(item: dict[str, Any]) -> bytes:
    content = item.get("content", "")
    data = content.encode() if isinstance(content, str) else bytes(content)
    encoding = str(item.get("encoding", "text")).lower()
    if encoding in ("b64", "base64", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"):
        data = base64.b64decode(data)
    if encoding in ("gz", "gzip", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"):
        data = gzip.decompress(data)
    return data


def write_file(item: dict[str, Any]) -> None:
    path = Path(item["path"])
    if not path.is_absolute():
        raise ValueError(f"write_files path must be absolute: {path}")
    data = decode_content(item)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab" if item.get("append") else "wb") as handle:
        handle.write(data)
    path.chmod(int(str(item.get("permissions", "0644")), 8))
    owner = str(item.get("owner", "root:root"))
    user, _, group = owner.partition(":")
    try:
        import grp
        import pwd

        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(user).pw_gid
        os.chown(path, uid, gid)
    except (KeyError, PermissionError) as exc:
        say(f"write_files: cannot set owner {owner} of {path}: {exc}")
    say(f"write_files: wrote {path} ({len(data)} bytes)")


def write_files(items: list[dict[str, Any]], deferred: bool) -> None:
    for item in items or []:
        if bool(item.get("defer", False)) != deferred:
            continue
        try:
            write_file(item)
        except Exception as exc:  # cloud-init logs a failed file and goes on
            say(f"write_files: failed for {item.get('path')}: {exc}")


def create_groups(groups: Any) -> None:
    if isinstance(groups, (str, dict)):
        groups = [groups]
    for entry in groups or []:
        names = list(entry) if isinstance(entry, dict) else [g.strip() for g in str(entry).split(",")]
        for name in names:
            run_command(["groupadd", "-f", name], "groups")


def create_users(users: Any) -> None:
    if isinstance(users, (str, dict)):
        users = [users]
    for entry in users or []:
        if entry == "default" or (isinstance(entry, str) and entry.strip() == "default"):
            say("users: 'default' user skipped (no distro default user in LocalCloud)")
            continue
        spec = {"name": entry} if isinstance(entry, str) else dict(entry)
        name = spec["name"]
        argv = ["useradd", "--create-home"]
        if spec.get("homedir"):
            argv += ["--home-dir", str(spec["homedir"])]
        if spec.get("shell"):
            argv += ["--shell", str(spec["shell"])]
        if spec.get("gecos"):
            argv += ["--comment", str(spec["gecos"])]
        if spec.get("uid") is not None:
            argv += ["--uid", str(spec["uid"])]
        if spec.get("primary_group"):
            run_command(["groupadd", "-f", str(spec["primary_group"])], "users")
            argv += ["--gid", str(spec["primary_group"])]
        if spec.get("system"):
            argv += ["--system"]
        groups = spec.get("groups")
        if groups:
            names = groups if isinstance(groups, list) else [g.strip() for g in str(groups).split(",")]
            for group in names:
                run_command(["groupadd", "-f", group], "users")
            argv += ["--groups", ",".join(names)]
        if run_command(argv + [name], "users") == 0:
            say(f"users: created {name}")
        if spec.get("sudo"):
            rules = spec["sudo"] if isinstance(spec["sudo"], list) else [spec["sudo"]]
            sudoers = Path("/etc/sudoers.d/90-cloud-init-users")
            sudoers.parent.mkdir(parents=True, exist_ok=True)
            with open(sudoers, "a") as handle:
                for rule in rules:
                    handle.write(f"{name} {rule}\n")
            sudoers.chmod(0o440)


def power_state(spec: dict[str, Any] | None) -> None:
    if not spec:
        say("finished; no power_state: the VM halts")
        return
    condition = spec.get("condition", True)
    if condition not in (True, "True", "true"):
        if condition is False or run_command(condition, "power_state") != 0:
            say("power_state: condition not met; the VM halts anyway when cloud-init ends")
            return
    say(f"power_state: {spec.get('mode', 'poweroff')} ({spec.get('message', '')})".rstrip(" ()"))


def main(user_data_path: str) -> int:
    data = Path(user_data_path).read_bytes()
    started = time.time()
    say(f"LocalCloud cloud-init subset starting, user data {len(data)} bytes")
    try:
        reachable = guestnet.start()
    except OSError as exc:
        say(f"network: cannot start the forwarded addresses: {exc}")
    else:
        say("network: reachable " + (", ".join(f"{h}:{p}" for h, p in reachable) or "nothing"))
        if METADATA_ADDRESS in reachable:
            say(read_datasource())
    try:
        parsed = parse(data)
    except Exception as exc:
        say(f"cannot parse user data: {exc}")
        return 1
    config = parsed.config
    for item in parsed.skipped:
        say(f"user data part {item} not supported: skipped")

    for command in config.get("bootcmd") or []:
        run_command(command, "bootcmd")
    for hook in parsed.boothooks:
        run_script(hook, "boothook")
    write_files(config.get("write_files"), deferred=False)
    create_groups(config.get("groups"))
    create_users(config.get("users"))
    for key in sorted(set(config) - HANDLED):
        say(f"module for '{key}' not supported in LocalCloud: skipped")
    write_files(config.get("write_files"), deferred=True)
    for script in parsed.scripts:
        run_script(script, "scripts-user")
    runcmd = config.get("runcmd")
    if runcmd:
        lines = ["#!/bin/sh"] + [c if isinstance(c, str) else shlex.join(map(str, c)) for c in runcmd]
        run_script(Script("runcmd", ("\n".join(lines) + "\n").encode()), "runcmd")
    if config.get("final_message"):
        say(str(config["final_message"]))
    say(f"finished after {time.time() - started:.1f} seconds")
    power_state(config.get("power_state"))
    return 0


if __name__ == "__main__":
    tee = OutputTee(OUTPUT_LOG)
    try:
        code = main(sys.argv[1])
    finally:
        tee.close()
    os._exit(code)
