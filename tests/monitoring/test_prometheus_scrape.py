"""A real Prometheus (Debian's package) scrapes a running VMDirector (``dirac-agent``, several
cycles against LocalCloud and MariaDB) and a running VM endpoint; PromQL answers through
Prometheus' HTTP API must equal the state of the cloud and of VMDB."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from director_kit import CE, INSTALLATION, SITE, failed_create, start_director, start_endpoint, stop
from promkit import Prometheus, free_port


def post(url: str, token: str) -> int:
    request = urllib.request.Request(
        url, data=b"0.5", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_prometheus_sees_the_fleet_as_cloud_and_vmdb_have_it(world, local_cloud, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority, create_secret_file

    hour = 3600
    world.add_vm("healthy", "ACTIVE", 600, started_after=45, pilot="Running", pilot_age=60)
    world.add_vm("healthy2", "ACTIVE", 900, started_after=100, pilot="Running", pilot_age=60)
    world.add_vm("stuck", "BUILD", 2 * hour, pilot="Submitted")
    world.add_vm("zombie", "ACTIVE", hour, started_after=60, pilot="Done", pilot_age=1800)
    failed_create(world, "quota")
    failed_create(world, "capacity")
    local_cloud.compute.set_quota(local_cloud.project_id, instances=7)

    # the endpoint agent, with its metrics on a port of their own
    secret = tmp_path / "endpoint.secret"
    create_secret_file(secret)
    authority = TokenAuthority.from_secret_file(secret)
    endpoint_port, endpoint_metrics_port = free_port(), free_port()
    endpoint = start_endpoint(world, endpoint_port, endpoint_metrics_port, secret)
    director_port = free_port()
    director = start_director(world, director_port)
    prometheus = None
    try:
        prometheus = Prometheus(
            tmp_path / "prometheus",
            {"vmdirector": f"127.0.0.1:{director_port}", "vmendpoint": f"127.0.0.1:{endpoint_metrics_port}"},
        )
        healthy = world.names["healthy"]
        prometheus.wait_for(
            lambda: prometheus.value('up{job="vmendpoint"}') == 1,
            90,
            "the endpoint agent up",
            lambda: (world.tmp / "endpoint.log").read_text()[-3000:],
        )
        hb_url = f"http://127.0.0.1:{endpoint_port}/vm/v1/{healthy}/heartbeat"
        assert post(hb_url, authority.issue_for_vm(healthy, 86400)) == 204
        assert post(hb_url, authority.issue_for_vm(healthy, 86400)) == 429  # too early
        for _ in range(3):
            assert post(hb_url, "forged.token.value") == 401

        def ce_query(metric: str, **labels) -> float | None:
            selector = ",".join([f'ce="{CE}"', *(f'{k}="{v}"' for k, v in labels.items())])
            return prometheus.value(f"sum({metric}{{{selector}}})")

        def listings(metric: str) -> float | None:
            """Every listing call of the CE: a full listing or a changes-since refresh."""
            return prometheus.value(f'sum({metric}{{ce="{CE}",call=~"list_.*"}})')

        def explain():
            figures = prometheus.query('{__name__=~"jdirac_.*"}')
            return f"\nprometheus: {figures}\n" + (world.tmp / "director.log").read_text()[-3000:]

        # several VMDirector cycles scraped: the listing counter keeps growing
        prometheus.wait_for(
            lambda: (listings("jdirac_cloud_calls_total") or 0) >= 4,
            120,
            "4 scraped VMDirector cycles",
            explain,
        )

        # VMs by state = the cloud's non-deleted VMs of this installation
        def cloud_states():
            states = {}
            for server in local_cloud.compute.servers.values():
                if server.metadata.get("jdirac-installation") != INSTALLATION or server.status == "DELETED":
                    continue
                state = "DELETING" if server.task_state == "deleting" else server.status
                states[state] = states.get(state, 0) + 1
            return states

        def states_match():
            seen = {dict(k)["state"]: v for k, v in prometheus.query(f'jdirac_vms{{ce="{CE}"}}').items()}
            return seen == cloud_states() and seen.get("ACTIVE") == 2

        prometheus.wait_for(states_match, 60, "jdirac_vms = the cloud's states", explain)
        (labels,) = prometheus.query(f'jdirac_vms{{ce="{CE}",state="ACTIVE"}}')
        assert dict(labels)["site"] == SITE

        records = world.vmdb.db.getVMs(ce=CE)["Value"]
        assert ce_query("jdirac_vm_creates_total") == len(records) == 6
        assert ce_query("jdirac_vm_creates_total", outcome="quota") == 1
        assert ce_query("jdirac_vm_creates_total", outcome="capacity") == 1
        assert ce_query("jdirac_vm_creates_total", outcome="created") == 4

        # deletions by reason = VMDB's delete reasons of the VMs the VMDirector deleted
        by_reason = {}
        for rec in records:
            reason = rec.get("delete_reason") or ""
            if reason.startswith("not booted"):
                by_reason["boot_timeout"] = by_reason.get("boot_timeout", 0) + 1
            elif reason.startswith("zombie"):
                by_reason["zombie"] = by_reason.get("zombie", 0) + 1
        assert by_reason == {"boot_timeout": 1, "zombie": 1}
        for reason, count in by_reason.items():
            assert ce_query("jdirac_vm_deletions_total", reason=reason) == count

        # backoff: the never-booted VM started one, VMDB has it active
        assert world.vmdb.db.getBackoff(CE, "")["Value"]["active"]
        assert ce_query("jdirac_backoffs_total") == 1
        assert ce_query("jdirac_backoff_active") == 1

        # quota: what the cloud says of the project
        project = local_cloud.credentials.project_name
        usage = local_cloud.compute.usage(local_cloud.project_id)
        prometheus.wait_for(
            lambda: (
                prometheus.value(f'jdirac_quota_used{{project="{project}",resource="instances"}}')
                == local_cloud.compute.usage(local_cloud.project_id)["instances"]
            ),
            30,
            "quota used = the cloud's usage",
            explain,
        )
        assert prometheus.value(f'jdirac_quota_limit{{project="{project}",resource="instances"}}') == 7
        assert prometheus.value(f'jdirac_quota_limit{{project="{project}",resource="cores"}}') == (
            local_cloud.compute.quota(local_cloud.project_id).cores
        )
        assert usage["instances"] >= 2

        # boot and life times: each VM with a start (and an end) observed once
        started = [r for r in records if r["started"] and r["created"]]
        assert ce_query("jdirac_vm_boot_seconds_count") == len(started) == 3
        boots = sorted((r["started"] - r["created"]).total_seconds() for r in started)
        assert ce_query("jdirac_vm_boot_seconds_sum") == pytest.approx(sum(boots), abs=3)
        assert ce_query("jdirac_vm_boot_seconds_bucket", le="60.0") == sum(1 for b in boots if b <= 60)
        assert listings("jdirac_cloud_call_seconds_count") >= 4
        # one full listing of the project, then changes-since refreshes, each counted
        assert ce_query("jdirac_cloud_calls_total", call="list_installation_vms") >= 1
        assert ce_query("jdirac_cloud_calls_total", call="list_installation_changes") >= 1

        # the endpoint: responses by status and refusals by reason
        def endpoint_match():
            return (
                prometheus.value('jdirac_endpoint_responses_total{code="204"}') == 1
                and prometheus.value('jdirac_endpoint_responses_total{code="401"}') == 3
                and prometheus.value('jdirac_endpoint_refusals_total{reason="invalid token"}') == 3
                and prometheus.value('jdirac_endpoint_refusals_total{reason="heartbeat too early"}') == 1
            )

        prometheus.wait_for(endpoint_match, 30, "endpoint figures", explain)
        # the endpoint writes heartbeats in batches (HeartbeatFlushMilliseconds after they arrive)
        prometheus.wait_for(lambda: world.vmdb.db.getVMs(names=[healthy])["Value"][0]["last_heartbeat"] is not None,
                            30, "the heartbeat written", explain)
        assert prometheus.value('up{job="vmdirector"}') == 1 and prometheus.value('up{job="vmendpoint"}') == 1
    finally:
        if prometheus is not None:
            prometheus.stop()
        stop(director)
        stop(endpoint)
