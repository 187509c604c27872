"""The fleet page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
served over TLS requiring a certificate of the loopback DIRAC CA, for a running LocalCloud fleet
(a ``dirac-agent`` VMDirector cycling, its metrics giving the quotas); the numbers in the DOM
must equal VMDB's and the cloud's; refused without a certificate, with one of another CA and
for a user without the Operator property. The screenshot is kept (path printed)."""

from __future__ import annotations

import datetime as dt
import http.client
import shutil
from collections import Counter
from pathlib import Path

import pytest
from director_kit import CE, SITE, failed_create, start_director, stop
from promkit import Prometheus, free_port
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from tlshelper import CertPresentingHelper, client_context

from dev.loopback.certs import USER_DN, make_credentials

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "var" / "test-artifacts" / "fleet-page.png"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1400",
)  # fmt: skip
HOSTILE_LOG = (
    b'boot ok\n<script>window.pwned = 1</script><img src=x onerror="window.pwned=2">\n\xff\xfe\x1b[31m\x00end'
)


def registry_cfg(properties: str) -> str:
    return (
        "Registry\n{\n  Users\n  {\n    opsuser\n    {\n"
        f"      DN = {USER_DN}\n    }}\n  }}\n  Groups\n  {{\n    dirac_admin\n    {{\n"
        f"      Users = opsuser\n      Properties = {properties}\n    }}\n  }}\n}}\n"
    )


def load_cfg(text: str) -> None:
    from DIRAC import gConfig
    from diraccfg import CFG

    gConfig.loadCFG(CFG().loadFromBuffer(text))


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def cell(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def test_fleet_page_in_chromium(world, local_cloud, browser, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient
    from JenniferDIRAC.WorkloadManagementSystem.FleetPageServer.app import FleetPageApp
    from JenniferDIRAC.WorkloadManagementSystem.FleetPageServer.fleet import printable
    from JenniferDIRAC.WorkloadManagementSystem.FleetPageServer.server import FleetPageServer

    creds = make_credentials(tmp_path / "grid-security", tmp_path / "user")
    other = make_credentials(tmp_path / "other-ca", tmp_path / "other-user")  # a CA DIRAC does not trust
    load_cfg(registry_cfg("Operator, NormalUser"))

    world.add_vm("healthy", "ACTIVE", 600, started_after=45, pilot="Running", pilot_age=60)
    world.add_vm("healthy2", "ACTIVE", 900, started_after=100, pilot="Running", pilot_age=60)
    world.add_vm("booting", "BUILD", 60, pilot="Submitted")
    world.add_vm("stuck", "BUILD", 7200, pilot="Submitted")
    failed_create(world, "quota")
    failed_create(world, "configuration", "image <b>EL9</b> not found")
    local_cloud.compute.set_quota(local_cloud.project_id, instances=8)
    healthy = world.names["healthy"]
    db = world.vmdb.db
    for minutes, load in ((3, "0.25"), (2, "0.42")):
        assert db.addHeartbeat(healthy, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes), load)["OK"]
    assert db.storeLog(healthy, "boot", HOSTILE_LOG)["OK"]

    director_port = free_port()
    director = start_director(world, director_port)
    app = FleetPageApp(VMStateClient(), metrics_url=f"http://127.0.0.1:{director_port}/metrics")
    server = FleetPageServer(
        app, "127.0.0.1", 0, str(creds.host_cert), str(creds.host_key), str(creds.cert_dir)
    )
    server.start()
    helpers = []

    def helper(context):
        h = CertPresentingHelper("127.0.0.1", server.port, context)
        helpers.append(h)
        return h

    operator = helper(client_context(str(creds.ca_cert), str(creds.user_cert), str(creds.user_key)))
    try:
        # the VMDirector has acted (the never-booted VM deleted, backoff started) and serves quotas
        def settled():
            backoff = db.getBackoff(CE, "")["Value"]
            stuck = db.getVMs(names=[world.names["stuck"]])["Value"][0]
            return bool(backoff and backoff["active"] and stuck["deleted"]) and bool(
                operator.fetch("/")[2].count(b'data-resource="instances"')
            )

        Prometheus.wait_for(
            settled, 120, "VMDirector cycles", lambda: (world.tmp / "director.log").read_text()[-3000:]
        )

        browser.get(operator.url + "/")
        assert browser.title == "Fleet - JenniferDIRAC fleet"
        active = db.getVMs(active_only=True)["Value"]
        expected = Counter(vm["cloud_state"] or "UNKNOWN" for vm in active if vm["site"] == SITE)
        row = f'#sites tr[data-site="{SITE}"]'
        for state in ("BUILD", "ACTIVE", "SHUTOFF", "ERROR"):
            assert int(cell(browser, f'{row} td[data-state="{state}"]')) == expected[state], state
        assert expected["ACTIVE"] == 2 and expected["BUILD"] == 1
        assert int(cell(browser, f'{row} td[data-state="total"]')) == len(active) == sum(expected.values())
        cloud_active = [
            s
            for s in local_cloud.compute.servers.values()
            if s.status == "ACTIVE" and s.task_state != "deleting"
        ]
        assert len(cloud_active) == expected["ACTIVE"]

        all_records = db.getVMs(ce=CE)["Value"]
        failures = [vm for vm in all_records if vm["failure_kind"]]
        assert int(cell(browser, f'#ces tr[data-ce="{CE}"] td[data-field="failures"]')) == len(failures) == 2
        assert int(cell(browser, f'#ces tr[data-ce="{CE}"] td[data-field="vms"]')) == len(active)
        assert cell(browser, f'#ces tr[data-ce="{CE}"] td[data-field="backoff"]').startswith("- until ")

        project = local_cloud.credentials.project_name
        quota_row = f'#quota tr[data-project="{project}"][data-resource="instances"]'

        def quota_shown():
            browser.refresh()
            used = int(cell(browser, f'{quota_row} td[data-field="used"]'))
            return used == local_cloud.compute.usage(local_cloud.project_id)["instances"]

        Prometheus.wait_for(quota_shown, 30, "quota used = the cloud's usage")
        assert cell(browser, f'{quota_row} td[data-field="limit"]') == "8"

        shot = tmp_path / "fleet-page.png"
        assert browser.save_screenshot(str(shot))
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ARTIFACT)
        print(f"\nfleet page screenshot: {ARTIFACT}")

        # one CE: failures with their kind and the cloud's text (escaped), active backoff
        browser.get(operator.url + f"/ce/{CE}")
        kinds = sorted(
            e.text for e in browser.find_elements(By.CSS_SELECTOR, '#failures td[data-field="kind"]')
        )
        assert kinds == sorted(vm["failure_kind"] for vm in failures) == ["configuration", "quota"]
        assert "image <b>EL9</b> not found" in cell(browser, "#failures")
        assert not browser.find_elements(By.CSS_SELECTOR, "#failures b")
        assert "yes" in cell(browser, "#backoffs")

        # one VM: record, heartbeats, the hostile log shown as text, never run
        browser.get(operator.url + f"/vm/{healthy}")
        assert cell(browser, '#record td[data-field="vm_name"]') == healthy
        heartbeats = db.getHeartbeats(healthy)["Value"]
        rows = browser.find_elements(By.CSS_SELECTOR, "#heartbeats tr")[1:]
        assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [load for _, load in heartbeats]
        shown = browser.find_element(By.CSS_SELECTOR, 'pre[data-log="boot"]').get_attribute("textContent")
        assert shown == printable(HOSTILE_LOG) and "<script>" in shown
        assert browser.execute_script("return window.pwned") is None
        assert not browser.find_elements(By.CSS_SELECTOR, "pre img, pre script")

        # refused: no certificate, a certificate of another CA (both by TLS), a non-Operator user
        for refused in (
            helper(client_context(str(creds.ca_cert))),
            helper(client_context(str(creds.ca_cert), str(other.user_cert), str(other.user_key))),
        ):
            browser.get(refused.url + "/")
            assert browser.find_elements(By.ID, "tls-error"), browser.page_source[:500]
            assert not browser.find_elements(By.ID, "sites")
        load_cfg(registry_cfg("NormalUser"))
        browser.get(operator.url + "/")
        assert browser.title == "Access refused"
        assert "has no group with the Operator property" in cell(browser, "#message")
        assert not browser.find_elements(By.ID, "sites")
        load_cfg(registry_cfg("Operator"))

        # nothing writable
        connection = http.client.HTTPSConnection(
            "127.0.0.1",
            server.port,
            context=client_context(str(creds.ca_cert), str(creds.user_cert), str(creds.user_key)),
        )
        connection.request("POST", "/", body=b"x")
        assert connection.getresponse().status == 405
        connection.close()
    finally:
        for h in helpers:
            h.stop()
        server.stop()
        stop(director)
