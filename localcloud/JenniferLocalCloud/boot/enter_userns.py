"""First process of a LocalCloud VM: moves the VM into a user namespace, then runs its init.

    python -I enter_userns.py BASE COUNT -- COMMAND...

bubblewrap runs as host root (it must read host paths in directories only root may traverse,
such as a Python under /root), so the sandbox it builds belongs to the host's user namespace.
This launcher, still host root with CAP_SETUID/CAP_SETGID, forks a child that unshares a user
namespace and, owned by it, a network namespace; the parent maps uids and gids 0..COUNT-1 of it
to the unused host range BASE..BASE+COUNT-1; the child becomes uid 0 there and execs COMMAND.
The VM's "root" is then host uid BASE: it owns its own tree, reads host files only through their
"other" permission bits, can neither mount nor signal or trace host processes, and the mount
namespace it lives in belongs to the host's user namespace, so it cannot reconfigure it. The
network namespace is the VM's own, as a VM's kernel is: its root configures it (loopback
addresses, nftables) but it holds only ``lo``, inside bubblewrap's empty one; the host is
reached only through the Unix sockets ``netbridge`` serves.

Runs inside the sandbox before any VM code: stdlib only (ctypes for unshare(2)).
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def _child(ready_w: int, go_r: int, command: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        os.write(2, f"enter_userns: unshare failed: {os.strerror(ctypes.get_errno())}\n".encode())
        os._exit(126)
    os.write(ready_w, b"1")
    os.close(ready_w)
    if os.read(go_r, 1) != b"1":
        os._exit(126)
    os.close(go_r)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.execv(command[0], command)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: enter_userns.py BASE COUNT -- COMMAND...", file=sys.stderr)
        return 2
    base, count, command = int(argv[0]), int(argv[1]), argv[3:]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            _child(ready_w, go_r, command)
        except OSError as exc:
            os.write(2, f"enter_userns: cannot run {command[0]}: {exc}\n".encode())
        os._exit(127)
    os.close(ready_w)
    os.close(go_r)
    if os.read(ready_r, 1) != b"1":
        os.waitpid(pid, 0)
        return 126
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as handle:
            handle.write(f"0 {base} {count}\n")
    os.write(go_w, b"1")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
