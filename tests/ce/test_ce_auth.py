"""The cloud CE's credentials paths end to end (CS options + CloudAuth / clouds.yaml), token
expiry in the middle of a SiteDirector cycle, and secrets kept out of everything it logs."""

from __future__ import annotations

import logging
import os

import pytest
import yaml
from ce_testkit import CE_NAME, live_servers, user_data_text, write_cloud_auth
from DIRAC.WorkloadManagementSystem.Client import PilotStatus

from JenniferDIRAC.Resources.Cloud.sharedlisting import invalidate_all

TOKENS = ("identity", "POST", "/v3/auth/tokens")


def cycle(ce, wrapper, n=2):
    """What one SiteDirector cycle asks of a CE."""
    available = ce.available()
    assert available["OK"], available.get("Message")
    submitted = ce.submitJob(wrapper, "", n)
    assert submitted["OK"], submitted.get("Message")
    status = ce.getJobStatus(submitted["Value"])  # the same cycle sees the VMs as created
    assert status["OK"] and set(status["Value"].values()) <= {PilotStatus.SUBMITTED, PilotStatus.RUNNING}
    # the next cycle: the listing held since the submission is older than ListingCacheSeconds
    invalidate_all()
    status = ce.getJobStatus(submitted["Value"])
    assert status["OK"] and set(status["Value"].values()) == {PilotStatus.RUNNING}
    return submitted["Value"]


def test_application_credential_from_dirac_options(make_ce, wrapper, local_cloud, tmp_path):
    c = local_cloud.credentials
    auth = write_cloud_auth(tmp_path / "appcred.auth", c.application_credential_id, c.application_credential_secret)
    ce = make_ce(CloudAuth=auth, Driver_ex_force_auth_version="3.x_appcred", Driver_ex_tenant_name=None)
    assert len(cycle(ce, wrapper)) == 2


def test_oidc_access_token_from_cloud_auth(make_ce, wrapper, local_cloud, tmp_path):
    c = local_cloud.credentials
    auth = write_cloud_auth(
        tmp_path / "oidc.auth", "unused", c.oidc_access_token,
        extra=(f"auth_type = v3oidcaccesstoken\nidentity_provider = {c.oidc_identity_provider}\n"
               f"protocol = {c.oidc_protocol}\nproject_domain_name = {c.domain_name}\n"),
    )
    ce = make_ce(CloudAuth=auth, Driver_ex_force_auth_version=None)
    assert len(cycle(ce, wrapper)) == 2


def test_clouds_yaml_cloud(make_ce, wrapper, local_cloud, tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"localcloud": local_cloud.clouds_yaml_entry("password")}}))
    os.chmod(path, 0o600)
    ce = make_ce(CloudsYamlCloud="localcloud", CloudsYamlFile=str(path), CloudType=None,
                 Driver_ex_force_auth_url=None, Driver_ex_force_auth_version=None, Driver_ex_tenant_name=None,
                 CloudAuth=None)
    assert len(cycle(ce, wrapper)) == 2


def test_readable_secrets_file_is_refused_naming_the_option(make_ce, wrapper, local_cloud, tmp_path):
    c = local_cloud.credentials
    auth = write_cloud_auth(tmp_path / "open.auth", c.username, c.password)
    os.chmod(auth, 0o644)
    ce = make_ce(CloudAuth=auth)
    status = ce.available()
    assert not status["OK"] and "CloudAuth" in status["Message"] and "chmod 600" in status["Message"]
    assert live_servers(local_cloud) == []


def test_token_expiry_mid_cycle_reauthenticates_once(make_ce, wrapper, local_cloud):
    ce = make_ce(ListingCacheSeconds=0)  # every call reaches the cloud, so each expiry is met
    refs = cycle(ce, wrapper)
    local_cloud.counters.reset()
    local_cloud.faults.expire_token(service="compute", method="POST")  # during the next create
    refs += cycle(ce, wrapper, n=1)
    local_cloud.identity.expire_all_tokens()  # and again before monitoring
    status = ce.getJobStatus(refs)["Value"]
    assert set(status.values()) == {PilotStatus.RUNNING} and len(status) == 3
    assert local_cloud.counters.get(*TOKENS) == 2
    assert len(live_servers(local_cloud)) == 3  # the create refused with 401 was not duplicated


def test_secrets_never_reach_the_logs_or_errors(make_ce, wrapper, local_cloud, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    c = local_cloud.credentials
    ce = make_ce()
    refs = cycle(ce, wrapper)
    user_data = "".join(user_data_text(server) for server in live_servers(local_cloud))
    assert "#cloud-config" in user_data
    ce.getJobOutput(refs[0])
    local_cloud.faults.http_error(500, service="compute", method="POST", times=1)
    ce.submitJob(wrapper, "", 1)
    ce.killJob(refs)
    wrong = "wrong-" + c.password
    bad = make_ce(ce_name="bad.local.test",
                  CloudAuth=write_cloud_auth(tmp_path / "wrong.auth", c.username, wrong))
    results = [bad.available(), bad.submitJob(wrapper, "", 1), bad.getJobStatus([f"cloud://bad.local.test/x"])]
    assert not results[0]["OK"] and not results[1]["OK"]
    text = caplog.text + capsys.readouterr().out + " ".join(str(r) for r in results)
    text += user_data
    assert CE_NAME in text  # the logs were captured
    for secret in (c.password, wrong):
        assert secret not in text


def test_dirac_libcloud_oidc_configuration_works_unchanged(make_ce, wrapper, local_cloud, tmp_path):
    # DIRAC's libcloud OIDC options: key = identity provider, secret = access token,
    # ex_tenant_name = federation protocol, ex_domain_name = project
    c = local_cloud.credentials
    auth = write_cloud_auth(tmp_path / "oidc.auth", c.oidc_identity_provider, c.oidc_access_token)
    ce = make_ce(CloudAuth=auth, Driver_ex_force_auth_version="3.x_oidc_access_token",
                 Driver_ex_tenant_name=c.oidc_protocol, Driver_ex_domain_name=c.project_name)
    assert len(cycle(ce, wrapper)) == 2
