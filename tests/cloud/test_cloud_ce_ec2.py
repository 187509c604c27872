"""The cloud CE on EC2 (libcloud) against moto's EC2 server on loopback: submit, status, kill,
and user data packed within EC2's 16 KiB limit."""

from __future__ import annotations

import base64
import gzip
import os
import secrets

import pytest
from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.references import parse_reference

from cloudconfig_testkit import pilot_environment

CE_NAME = "ec2.cloud.test"
AMI = "ami-03cf127a"  # one of moto's default AMIs


@pytest.fixture
def ec2_ce(moto_ec2, ec2_namespace, tmp_path):
    host, port = moto_ec2
    auth = tmp_path / "cloud.auth"
    auth.write_text("[DEFAULT]\nkey = test\nsecret = ec2-ce-secret-value\n")
    os.chmod(auth, 0o600)
    params = {
        "CloudType": "EC2",
        "Driver_region": "us-east-1",
        "Driver_host": host,
        "Driver_port": str(port),
        "Driver_secure": "False",
        "Driver_signature_version": "4",
        "CloudAuth": str(auth),
        "Instance_Image": AMI,
        "Instance_Flavor": "name:t2.micro",
        "InstallationName": "JenniferEC2Test",
        "Site": "CLOUD.EC2.test",
        "Community": "testvo",
        "MaxTotalJobs": "20",
        "MaxWaitingJobs": "10",
    }
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE_NAME, ceParametersDict=params)
    assert result["OK"], result.get("Message")
    ce = result["Value"]
    yield ce
    ce.shutdown()


@pytest.fixture
def big_wrapper(tmp_path):
    # a pilot wrapper the size of DIRAC's with a bundled proxy: too big for EC2 uncompressed
    body = "\n".join(f"# {secrets.token_hex(8)} {'x' * 40}" for _ in range(400))
    path = tmp_path / "pilot-wrapper.sh"
    path.write_text("#!/bin/bash\n" + body + "\necho done\n")
    assert path.stat().st_size > 16384
    return str(path)


def test_submit_status_kill_on_ec2(ec2_ce, big_wrapper, boto):
    ce = ec2_ce
    assert ce.available()["OK"]
    result = ce.submitJob(big_wrapper, "", 2)
    assert result["OK"], result.get("Message")
    refs = result["Value"]
    assert len(refs) == 2 and set(result["PilotStampDict"]) == set(refs)

    instances = {
        i["InstanceId"]: i
        for r in boto.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
        and {"Key": "jdirac-ce", "Value": CE_NAME} in i.get("Tags", [])
    }
    assert len(instances) == 2
    by_name = {next(t["Value"] for t in i["Tags"] if t["Key"] == "Name"): i for i in instances.values()}
    for ref in refs:
        instance = by_name[parse_reference(ref)[1]]
        attribute = boto.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        packed = base64.b64decode(attribute["UserData"]["Value"])
        assert len(packed) <= 16384 and packed[:2] == b"\x1f\x8b"  # gzip made it fit
        env = pilot_environment(gzip.decompress(packed).decode())
        assert env["PILOT_UUID"] == ref and env["DIRAC_PILOT_STAMP"] == result["PilotStampDict"][ref]

    status = ce.getJobStatus(refs)
    assert status["OK"]
    assert set(status["Value"].values()) <= {PilotStatus.SUBMITTED, PilotStatus.RUNNING}
    ce_status = ce.getCEStatus()
    assert ce_status["RunningJobs"] + ce_status["WaitingJobs"] == 2

    assert ce.killJob(refs)["OK"]
    assert set(ce.getJobStatus(refs)["Value"].values()) == {PilotStatus.DELETED}
    assert ce.killJob(refs)["OK"]
