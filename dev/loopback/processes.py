"""The loopback server's long-running components as process groups: start one with its log,
see whether it lives or listens, stop whole groups (a job wrapper shares its component's)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from dev.mariadb import die_with_parent

STOP_TIMEOUT = 20.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG)[0] != pid
    except ChildProcessError:
        return True


def spawn(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, tied_to_parent: bool) -> int:
    """Start cmd in a process group of its own, appending its output to log; its pid.
    ``tied_to_parent``: it dies with the process that started it."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if tied_to_parent else None,
        )
    return proc.pid


def stop_groups(pids: list[int]) -> None:
    """SIGTERM each process group, wait, then SIGKILL what is left (children such as a job
    wrapper share their component's group) and reap."""
    for pid in pids:
        if alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in pids:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        while alive(pid):
            time.sleep(0.05)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_listening(
    wanted: dict[str, list[int]], timeout: float, check_alive: Callable[[], None]
) -> list[str]:
    """Poll until every port of wanted ({label: ports}) listens; the labels still not listening
    after timeout ([] when all do). check_alive() raises if a component has exited meanwhile."""
    deadline = time.monotonic() + timeout
    pending = {(label, port) for label, ports in wanted.items() for port in ports}
    while pending:
        check_alive()
        pending = {(label, port) for label, port in pending if not listening(port)}
        if not pending:
            break
        if time.monotonic() > deadline:
            return sorted({label for label, _ in pending})
        time.sleep(0.2)
    return []


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
