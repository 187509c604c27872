"""The benchmark comes from the flavor where the cloud declares it (cASO's flavor properties),
read through openstacksdk from LocalCloud's Nova API (GET /flavors/{id}/os-extra_specs)."""

import datetime as dt
import uuid

from apel_testkit import CLOUD_HEADER, JOB_HEADER, parse_message, validate
from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend
from JenniferDIRAC.WorkloadManagementSystem.Accounting import APEL

START = dt.datetime(2026, 10, 5, 8, 0, tzinfo=dt.UTC)


def backend_for(cloud) -> OpenStackBackend:
    c = cloud.credentials
    auth = v3.Password(auth_url=c.auth_url, username=c.username, password=c.password,
                       user_domain_name=c.domain_name, project_name=c.project_name,
                       project_domain_name=c.domain_name)  # fmt: skip
    return OpenStackBackend(auth=auth, region_name=c.region_name, secrets=[c.password])


def vm(flavor):
    return {
        "vm_name": "jdirac-" + uuid.uuid4().hex, "vm_id": str(uuid.uuid4()), "ce": "localcloud.example",
        "site": "CLOUD.Local.test", "vo": "belle", "profile": "belle", "flavor": flavor, "cores": 4,
        "ram_mb": 8192, "started": START, "end": START + dt.timedelta(hours=5), "wall_seconds": 5 * 3600,
        "heartbeat_load": "3.9 3.9 3.8 5/300 777 cpu=61200",
    }  # fmt: skip


def test_benchmark_from_flavor_extra_specs(local_cloud):
    name = f"bench-{uuid.uuid4().hex[:6]}"
    local_cloud.compute.add_flavor(
        name, vcpus=4, ram=8192,
        extra_specs={"accounting:benchmark_name": "HS23", "accounting:benchmark_value": "17.5", "hw:cpu_policy": "dedicated"},
    )  # fmt: skip
    plain = f"plain-{uuid.uuid4().hex[:6]}"
    local_cloud.compute.add_flavor(plain, vcpus=4, ram=8192)
    backend = backend_for(local_cloud)
    try:
        properties = {flavor: backend.flavor_properties(f"name:{flavor}") for flavor in (name, plain)}
    finally:
        backend.close()
    assert properties[name]["accounting:benchmark_value"] == "17.5" and properties[plain] == {}
    settings = APEL.AccountingSettings(
        hs06_per_core=lambda vm: 10.0,
        flavor_properties=lambda vm: properties[vm["flavor"]],
        site_name=lambda s: s,
    )
    job = APEL.apel_record(vm(name), settings)
    (parsed,) = parse_message(APEL.format_message([job]), JOB_HEADER)
    validate(JOB_HEADER, parsed)
    assert (parsed["ServiceLevelType"], parsed["ServiceLevel"], parsed["CpuDuration"]) == (
        "HEPscore23",
        "17.5",
        "61200",
    )
    (cloud,) = parse_message(APEL.format_message([APEL.cloud_record(vm(name), settings)]), CLOUD_HEADER)
    validate(CLOUD_HEADER, cloud)
    assert (cloud["BenchmarkType"], cloud["Benchmark"]) == ("HEPscore23", "17.5")
    register = APEL.dirac_accounting_record(vm(name), settings)["Value"]
    assert register.getValue("BenchmarkSource")["Value"] == "Flavor"
    assert register.getValue("NormCPUTime")["Value"] == 61200 * 17.5
    fallback = APEL.dirac_accounting_record(vm(plain), settings)["Value"]
    assert fallback.getValue("BenchmarkSource")["Value"] == "CE"
    assert fallback.getValue("NormCPUTime")["Value"] == 61200 * 10.0
