"""The cloud CE on Azure ARM (libcloud) against the loopback Azure stand-in: submit, status,
kill through DIRAC's CE factory, the pilot's variables in the VM's custom data."""

from __future__ import annotations

import base64
import gzip
import os

import pytest
from azure_arm_standin import CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION, TENANT
from cloudconfig_testkit import pilot_environment
from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.references import parse_reference

CE_NAME = "azure.cloud.test"


@pytest.fixture
def azure_ce(azure, tmp_path):
    auth = tmp_path / "cloud.auth"
    auth.write_text(f"[{CE_NAME}]\nkey = {CLIENT_ID}\nsecret = {CLIENT_SECRET}\n"
                    f"tenant_id = {TENANT}\nsubscription_id = {SUBSCRIPTION}\n")
    os.chmod(auth, 0o600)
    params = {
        "CloudType": "AZURE_ARM", "CloudAuth": str(auth), "Region": "eastus",
        "Driver_ex_resource_group": "000000", "Driver_ex_subnet": "Azure_VPC_Subnet",
        "Driver_management_url": azure.url, "Driver_login_url": azure.url,
        "Instance_Image": "OpenLogic:CentOS:7.3:latest", "Instance_Flavor": "name:Standard_A1",
        "Instance_Networks": "name:test_network",
        "InstallationName": "JenniferAzureTest", "Site": "CLOUD.Azure.test", "Community": "testvo",
        "MaxTotalJobs": "20", "MaxWaitingJobs": "10",
    }
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE_NAME, ceParametersDict=params)
    assert result["OK"], result.get("Message")
    ce = result["Value"]
    yield ce
    ce.shutdown()


def test_submit_status_kill_on_azure(azure, azure_ce, tmp_path):
    ce = azure_ce
    wrapper = tmp_path / "pilot-wrapper.sh"
    wrapper.write_text("#!/bin/bash\necho pilot\n")
    result = ce.submitJob(str(wrapper), "", 2)
    assert result["OK"], result.get("Message")
    refs = result["Value"]
    assert len(refs) == 2 and set(result["PilotStampDict"]) == set(refs)

    by_name = {put["name"]: put for put in azure.vm_puts}
    for ref in refs:
        put = by_name[parse_reference(ref)[1]]
        assert put["tags"]["jdirac-ce"] == CE_NAME
        custom = base64.b64decode(put["properties"]["osProfile"]["customData"])
        text = gzip.decompress(custom).decode() if custom[:2] == b"\x1f\x8b" else custom.decode()
        env = pilot_environment(text)
        assert env["PILOT_UUID"] == ref and env["DIRAC_PILOT_STAMP"] == result["PilotStampDict"][ref]

    status = ce.getJobStatus(refs)
    assert status["OK"] and set(status["Value"].values()) == {PilotStatus.RUNNING}
    ce_status = ce.getCEStatus()
    assert ce_status["OK"] and ce_status["RunningJobs"] == 2

    assert ce.killJob(refs)["OK"]
    assert azure.vms == {} and azure.nics == {}
    assert set(ce.getJobStatus(refs)["Value"].values()) == {PilotStatus.DELETED}
