"""The boot script's metadata block: the rules it gives nftables (or iptables when nft is missing or
refuses), through recording stand-ins on PATH. That the rules do block every uid but root in a VM
is tests/sandbox/test_metadata_service.py's (LocalCloud runs this function with the real tools)."""

import re
import subprocess
from pathlib import Path

from JenniferDIRAC.Resources.Cloud.UserData.render import BOOT_SCRIPT


def function_text(name):
    text = BOOT_SCRIPT.read_text()
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n\n", text, re.M | re.S)  # the heredoc has a "}" line
    assert match, f"{name} not in {BOOT_SCRIPT}"
    return match.group(0)


def run_block(tmp_path, nft=None, iptables=None, address=None):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool, body in (("nft", nft), ("iptables", iptables)):
        if body is not None:
            (bindir / tool).write_text(f"#!/bin/bash\n{body}\n")
            (bindir / tool).chmod(0o755)
    script = "log() { echo \"LOG $*\"; }\n" + function_text("block_metadata") + "block_metadata\n"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "OUT": str(tmp_path)}
    if address:
        env["JDIRAC_METADATA_ADDRESS"] = address
    result = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_nftables_rejects_every_uid_but_root(tmp_path):
    out = run_block(tmp_path, nft='cat > "$OUT/ruleset"')
    ruleset = (tmp_path / "ruleset").read_text()
    assert "type filter hook output priority 0; policy accept;" in ruleset
    assert re.search(r"^\s*ip daddr 169\.254\.169\.254 meta skuid != 0 meta l4proto tcp"
                     r" reject with tcp reset\n"
                     r"\s*ip daddr 169\.254\.169\.254 meta skuid != 0 reject$", ruleset, re.M), ruleset
    assert "blocked for every uid but root (nftables)" in out


def test_iptables_owner_match_when_nft_refuses(tmp_path):
    out = run_block(tmp_path, nft="exit 1", iptables='echo "$*" >> "$OUT/args"', address="10.0.0.9")
    # --socket-exists: without it "! --uid-owner" matches the reset itself and drops it.
    assert (tmp_path / "args").read_text().splitlines() == [
        "-I OUTPUT -d 10.0.0.9 -m owner --socket-exists ! --uid-owner 0 -j REJECT",
        "-I OUTPUT -d 10.0.0.9 -p tcp -m owner --socket-exists ! --uid-owner 0"
        " -j REJECT --reject-with tcp-reset"]
    assert "blocked for every uid but root (iptables)" in out


def test_a_warning_when_the_image_has_neither(tmp_path):
    assert not any(Path(d, tool).exists() for d in ("/usr/bin", "/bin") for tool in ("nft", "iptables"))
    out = run_block(tmp_path)
    assert "WARNING: neither nftables nor iptables could block the metadata service 169.254.169.254" in out
