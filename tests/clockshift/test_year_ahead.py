"""The time-handling code's tests pass with the clock moved a year ahead (Debian's faketime).

The suites of VMDB (history, backoff, heartbeats, purge), the VMStateClient, the lifecycle policy,
VM endpoint tokens, APEL and DIRAC accounting, the VMDirector cycle and the admin commands run
again in a child pytest under `faketime -f +365d`: a test that fixes an instant and compares it
with something the code stamps "now" fails there, whatever today's date. libfaketime shifts the
whole process tree, so Python, the private mariadbd (UTC_TIMESTAMP() in VMDB's SQL), openssl and
the dirac-* commands all agree; shifted_clock_probe.py, run first, proves each of them is shifted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIFT_DAYS = 365
PROBE = "tests/clockshift/shifted_clock_probe.py"
#: The tests of the code that handles time.
SUITES = [
    "tests/unit",                                   # lifecycle policy, accounting figures, pilot records
    "tests/integration/test_vmdb.py",               # VM history, backoff and probes, heartbeats, purge
    "tests/integration/test_vmdb_retention.py",     # retention windows, the retention agent
    "tests/integration/test_vmdb_upgrade.py",
    "tests/integration/test_vmstate_client.py",
    "tests/integration/test_vm_accounting_db.py",   # APEL and DIRAC accounting of finished VMs
    "tests/integration/test_vmdirector_cycle.py",   # the lifecycle applied by real agent cycles
    "tests/endpoint/test_vmtokens.py",              # VM token expiry
    "tests/endpoint/test_endpoint_http.py",         # tokens over HTTP(S), a TLS certificate made now
    "tests/endpoint/test_vm_boot_reports.py",       # heartbeats and shutdown messages a VM sends
    "tests/ce/test_ce_vmdb.py",                     # the CE's backoff
]

pytestmark = [pytest.mark.clockshift, pytest.mark.slow]


@pytest.mark.timeout(3600)
def test_time_handling_suites_pass_a_year_ahead(tmp_path):
    faketime = shutil.which("faketime")
    assert faketime, "faketime is not installed: run dev/setup.sh (Debian package faketime)"
    suites = [s for s in SUITES if (REPO / s).exists()]
    assert suites == SUITES, f"missing suites: {sorted(set(SUITES) - set(suites))}"
    report = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKETIME", "LD_PRELOAD"))}
    env.update(JDIRAC_REAL_EPOCH=str(time.time()), JDIRAC_CLOCK_SHIFT_SECONDS=str(SHIFT_DAYS * 86400))
    # Plain "+365d": a running clock, monotonic shifted too (DONT_FAKE_MONOTONIC breaks sleep).
    cmd = [faketime, "-f", f"+{SHIFT_DAYS}d", sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
           "-q", "--tb=short", f"--junitxml={report}", "-o", "junit_family=xunit2", PROBE, *suites]
    log = tmp_path / "year-ahead.log"
    with log.open("w") as out:
        res = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=3300,
                             stdin=subprocess.DEVNULL)
    text = log.read_text(errors="replace")
    summary = [line for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    assert res.returncode == 0, (
        f"a year ahead, the suites fail (full output: {log}):\n" + "\n".join(summary) + "\n" + text[-8000:]
    )

    classnames = []
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        assert case.find("skipped") is None, f"skipped a year ahead: {name}"
        classnames.append(case.get("classname", ""))

    def ran(path: str) -> int:
        dotted = ".".join(Path(path).with_suffix("").parts)
        return sum(1 for c in classnames if c == dotted or c.startswith(dotted + "."))

    assert ran(PROBE) == 4, classnames  # every probe ran (and passed: returncode 0)
    for suite in suites:
        assert ran(suite) > 0, f"no test of {suite} ran"
