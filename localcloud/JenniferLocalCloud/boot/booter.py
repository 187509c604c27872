"""Runs each booted server's user data in its sandbox and reports when it has exited.

Each VM also gets its own metadata service at 169.254.169.254 (``metadata``), serving what the
server had when it booted.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import metadata
from .limits import VMLimits
from .netbridge import NetworkBridge, parse_destination
from .sandbox import VM_ENV, InstanceInfo, Sandbox, SandboxExists, hostname_for

if TYPE_CHECKING:
    from ..compute import Server

log = logging.getLogger(__name__)


class SandboxBooter:
    """Implements the compute state's ``Booter``: start, exit_code, stop, console.

    Processes are launched by one long-lived thread, because bubblewrap's ``--die-with-parent``
    follows the thread that forked it: VMs die with the cloud, not with a request thread.

    ``readable``: host paths the VMs may read (read-only); ``hidden``: paths inside those masked
    from them (e.g. a secret beside the pilot files); ``reachable``: host addresses the VMs may
    connect to (``"127.0.0.1:PORT"``; the DIRAC services, the VM endpoint, a pilot file server);
    ``limits``: the rlimits of every VM process. Read when each VM boots.
    """

    def __init__(self, sandbox_root: str | Path | None = None, region: str = "RegionOne",
                 readable: tuple[str, ...] = (), hidden: tuple[str, ...] = (),
                 reachable: tuple = (), limits: VMLimits | None = None) -> None:
        for tool in ("bwrap", "prlimit"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"LocalCloud(boot=True) needs {tool}: "
                                   "apt-get install bubblewrap util-linux")
        self._own_root = sandbox_root is None
        # A directory of its own under sandbox_root: a second cloud with the same id seed and the
        # same sandbox_root never meets the directories of the first one's VMs.
        if sandbox_root is not None:
            Path(sandbox_root).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="localcloud-vms-", dir=sandbox_root))
        self.region = region
        self.readable = readable
        self.hidden = hidden
        self.reachable = reachable
        self.limits = limits or VMLimits()
        self.network = NetworkBridge()
        self.sandboxes: dict[str, Sandbox] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self._exit_codes: dict[str, int] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._launcher: threading.Thread | None = None

    def sandbox(self, server_id: str) -> Sandbox:
        return self.sandboxes[server_id]

    def start(self, server: "Server") -> None:
        sandbox = Sandbox(self.root / server.id)
        info = InstanceInfo(
            instance_id=server.id, name=server.name, project_id=server.project_id,
            availability_zone=server.availability_zone, region=self.region,
            metadata=dict(server.metadata),
            user_data=base64.b64decode(server.user_data) if server.user_data else b"",
        )
        with self._lock:
            if server.id in self.sandboxes:
                log.error("LocalCloud: server %s booted twice; the second boot is refused", server.id)
                return
            self.sandboxes[server.id] = sandbox
            if self._launcher is None or not self._launcher.is_alive():
                self._launcher = threading.Thread(target=self._launch_loop, name="localcloud-vm-launcher",
                                                  daemon=True)
                self._launcher.start()
        self._queue.put((server.id, server.name, sandbox, info))

    def _launch_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            server_id, name, sandbox, info = item
            with self._lock:
                if server_id in self._cancelled:
                    continue
            try:
                sandbox.create()
            except (SandboxExists, OSError) as exc:
                log.error("LocalCloud cannot boot %s: %s", server_id, exc)
                with self._lock:
                    self.sandboxes.pop(server_id, None)  # whatever is there is not this VM's
                    self._exit_codes[server_id] = 127
                continue
            try:
                readable, hidden = tuple(self.readable), tuple(self.hidden)
                destinations = [parse_destination(d) for d in self.reachable]
                sandbox.prepare(info, readable)
                self.network.open(server_id, sandbox.net, destinations, metadata.documents(info))
                with sandbox.open_console() as console:
                    console.write(f"LocalCloud: booting {name} ({server_id})\n".encode())
                    console.flush()
                    process = subprocess.Popen(
                        self.limits.prlimit_command() + sandbox.command(hostname_for(name), readable, hidden),
                        stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=VM_ENV,
                        start_new_session=True,
                    )
            except (OSError, ValueError) as exc:
                log.error("LocalCloud cannot boot %s: %s", server_id, exc)
                self.network.close(server_id)
                with sandbox.open_console() as console:
                    console.write(f"LocalCloud: boot failed: {exc}\n".encode())
                with self._lock:
                    self._exit_codes[server_id] = 127
                continue
            with self._lock:
                self.processes[server_id] = process
                if server_id in self._cancelled:
                    _kill(process)

    def exit_code(self, server: "Server") -> int | None:
        with self._lock:
            if server.id in self._exit_codes:
                return self._exit_codes[server.id]
            process = self.processes.get(server.id)
        code = None if process is None else process.poll()
        if code is not None:
            self.network.close(server.id)
        return code

    def stop(self, server: "Server") -> None:
        with self._lock:
            self._cancelled.add(server.id)
            process = self.processes.get(server.id)
        if process is not None:
            _kill(process)
        self.network.close(server.id)

    def console(self, server: "Server") -> str | None:
        sandbox = self.sandboxes.get(server.id)
        return None if sandbox is None else sandbox.read_console()

    def stop_all(self) -> None:
        with self._lock:
            processes = list(self.processes.values())
        for process in processes:
            _kill(process)
        if self._launcher is not None:
            self._queue.put(None)
            self._launcher.join(timeout=10)
            self._launcher = None
        self.network.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _kill(process: subprocess.Popen) -> None:
    """Kill the VM's whole process group (bubblewrap, and with it the VM's PID namespace)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("LocalCloud VM process %s did not die", process.pid)
