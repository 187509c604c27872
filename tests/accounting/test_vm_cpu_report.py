"""The VM's boot script reports its CPU seconds (from /proc/stat) after its load in heartbeats."""

import os
import re
import subprocess
from pathlib import Path

from JenniferDIRAC.Resources.Cloud.UserData import render

SCRIPT = Path(render.BOOT_SCRIPT).read_text()


def shell_function(name: str) -> str:
    match = re.search(rf"^{name}\(\) {{.*?^}}$", SCRIPT, re.DOTALL | re.MULTILINE)
    assert match, f"{name}() not in the boot script"
    return match.group(0)


def cpu_seconds(stat_file: str) -> str:
    return subprocess.run(
        ["bash", "-c", shell_function("cpu_seconds") + f"\ncpu_seconds {stat_file}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip


def test_cpu_seconds_are_busy_ticks_over_clock_ticks(tmp_path):
    stat = tmp_path / "stat"
    #          user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  123400 600 45600 9999999 7777 1200 3200 88888 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    hz = int(subprocess.run(["getconf", "CLK_TCK"], capture_output=True, text=True).stdout)
    assert cpu_seconds(str(stat)) == str(
        (123400 + 600 + 45600 + 1200 + 3200) // hz
    )  # not idle, iowait, steal


def test_cpu_seconds_of_this_machine_are_plausible():
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert 0 < int(cpu_seconds("/proc/stat")) <= uptime * os.cpu_count()


def test_heartbeat_sends_load_then_cpu_and_finish_sends_a_last_one():
    heartbeat = shell_function("heartbeat")
    assert '"$(cat /proc/loadavg) cpu=$(cpu_seconds)"' in heartbeat
    assert shell_function("finish").splitlines()[1].strip().startswith("heartbeat")
