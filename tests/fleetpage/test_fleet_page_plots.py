"""The fleet page's accounting plots: ``dirac-agent WorkloadManagement/FleetPage`` on the loopback
DIRAC server, its Plots made by the ReportGenerator from VirtualMachine records written through
the DataStore (tests/accounting's 40-week dataset); the PNG is fetched through the page with the
loopback user's certificate (whose group has Operator) and kept as an artifact.

The session's AccountingDB is shared with tests/accounting (the same dataset) and the e2e tests:
this load's sites carry a tag of their own, and the wait before the page is asked checks them.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from promkit import free_port
from tlshelper import client_context

ACCOUNTING = Path(__file__).resolve().parent.parent / "accounting"
sys.path.insert(0, str(ACCOUNTING))
from accounting_data import dataset, load_tag

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "var" / "test-artifacts" / "fleet-page-plot.png"
PLOT = "VirtualMachine/TotalVMs/Site/40"
PLOT_NAME = "VirtualMachine-TotalVMs-Site-40w"


def _run(cmd, stdin, env, timeout=330):
    res = subprocess.run(
        cmd, input=stdin, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res


def get(port, context, path):
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_the_page_shows_the_accounting_plot(dirac_server, tmp_path):
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0, tzinfo=None)
    data = dataset(int(now.replace(tzinfo=dt.UTC).timestamp()), load_tag())
    env = dirac_server.server_env()
    assert (
        "sent" in _run([sys.executable, str(ACCOUNTING / "accounting_load.py")], json.dumps(data), env).stdout
    )
    expected = {s: float(sum(vm["site"] == s for vm in data["vms"])) for s in data["sites"]}
    probe = {
        "start": (now - dt.timedelta(weeks=40)).isoformat(),
        "end": now.isoformat(),
        "timeout": 300,
        "checks": [["VirtualMachine", "TotalVMs", "Site", expected]],
    }
    _run([sys.executable, "-m", "dev.loopback.accounting_probe"], json.dumps(probe), env)

    port = free_port()
    dirac_server.add_cs(
        "Systems\n{\n  WorkloadManagement\n  {\n    Agents\n    {\n      FleetPage\n      {\n"
        f"        Port = {port}\n        Host = 127.0.0.1\n        Plots = {PLOT}\n      }}\n    }}\n  }}\n}}\n"
    )
    dirac_server.start_component("FleetPage", ["dirac-agent", "WorkloadManagement/FleetPage"], env)
    roots = dirac_server.roots
    user = client_context(
        str(roots.grid_security / "certificates" / "ca.pem"),
        str(roots.user_dir / "usercert.pem"),
        str(roots.user_dir / "userkey.pem"),
    )
    deadline, page = time.monotonic() + 120, None
    while page is None:
        try:
            page = get(port, user, "/")
        except OSError:
            dirac_server.check_alive()
            assert time.monotonic() < deadline, (roots.logs / "FleetPage.log").read_text()[-3000:]
            time.sleep(0.25)  # polling until the agent listens; the deadline decides
    status, _, body = page
    assert status == 200, body[:2000]
    assert f'<img src="/plot/{PLOT_NAME}.png"'.encode() in body

    status, content_type, png = get(port, user, f"/plot/{PLOT_NAME}.png")
    assert status == 200, png[:2000]
    assert content_type == "image/png"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "plot.png").write_bytes(png)
    shutil.copyfile(tmp_path / "plot.png", ARTIFACT)
    print(f"\nfleet page accounting plot: {ARTIFACT}")
    dirac_server.stop_component("FleetPage")
