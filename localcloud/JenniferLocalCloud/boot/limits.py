"""Resource limits of a LocalCloud VM, applied with util-linux ``prlimit`` to the whole sandbox.

Without cgroups (not delegated on every demo host) rlimits are what bounds one VM: CPU seconds,
address space and file size per process, processes (and threads) per VM user, open files.
RLIMIT_NPROC counts the VM's own users only: they are host uids nobody else uses (see
``enter_userns``), and host root, which runs bubblewrap, is exempt from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VMLimits:
    cpu_seconds: int = 3600
    address_space_bytes: int = 4 << 30
    processes: int = 1024
    file_size_bytes: int = 1 << 30
    open_files: int = 4096

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"VMLimits.{name} must be a positive integer, got {value!r}")

    def prlimit_command(self) -> list[str]:
        """``prlimit ... --``: soft and hard limits alike, so the VM's root cannot raise them."""
        return ["prlimit", f"--cpu={self.cpu_seconds}", f"--as={self.address_space_bytes}",
                f"--nproc={self.processes}", f"--fsize={self.file_size_bytes}",
                f"--nofile={self.open_files}", "--"]
