"""Fixtures for the cloud CE tests: a CE built by DIRAC's ComputingElementFactory against LocalCloud."""

from __future__ import annotations

import pytest
from ce_testkit import CE_NAME, ce_parameters, write_cloud_auth


@pytest.fixture
def make_ce(local_cloud, tmp_path):
    """make_ce(**options) -> our CE through ComputingElementFactory (CEType Cloud), against
    local_cloud with password credentials in a private CloudAuth file."""
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    creds = local_cloud.credentials
    auth_file = write_cloud_auth(tmp_path / "cloud.auth", creds.username, creds.password)
    made = []

    def make(ce_name=CE_NAME, retry_delay=0.0, **options):
        result = ComputingElementFactory().getCE(
            ceType="Cloud", ceName=ce_name, ceParametersDict=ce_parameters(local_cloud, auth_file, **options)
        )
        assert result["OK"], result.get("Message")
        ce = result["Value"]
        ce.retryDelay = retry_delay
        made.append(ce)
        return ce

    yield make
    for ce in made:
        ce.shutdown()


@pytest.fixture(params=["localcloud", "realnova"])
def openstack_target(request):
    """The CE's OpenStack: LocalCloud, or real Keystone + Nova (session-wide, emptied after each
    test). Requests this process sends are counted on both (``target.counters``)."""
    from openstack_testkit import ClientCounter
    from targets import LocalCloudTarget, RealNovaTarget

    if request.param == "localcloud":
        yield LocalCloudTarget(request.getfixturevalue("local_cloud"))
        return
    cloud = request.getfixturevalue("real_openstack")
    counter = ClientCounter(cloud.service_roots)
    counter.install()
    try:
        yield RealNovaTarget(cloud, counter)
    finally:
        counter.uninstall()
        cloud.reset()


@pytest.fixture
def make_target_ce(openstack_target, tmp_path):
    """make_target_ce(auth="password"|"application_credential"|"token", **options) -> our CE
    through ComputingElementFactory against ``openstack_target``."""
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory
    from targets import target_ce_parameters, write_auth

    made = []

    def make(ce_name=CE_NAME, auth="password", retry_delay=0.0, **options):
        auth_file = write_auth(openstack_target, auth, tmp_path / f"{ce_name}-{auth}.auth")
        params = target_ce_parameters(openstack_target, auth_file, auth, **options)
        result = ComputingElementFactory().getCE(ceType="Cloud", ceName=ce_name, ceParametersDict=params)
        assert result["OK"], result.get("Message")
        ce = result["Value"]
        ce.retryDelay = retry_delay
        made.append(ce)
        return ce

    yield make
    for ce in made:
        ce.shutdown()


@pytest.fixture
def wrapper(tmp_path):
    path = tmp_path / "pilot-wrapper.sh"
    path.write_text("#!/bin/bash\necho 'pilot wrapper running'\n")
    return str(path)




@pytest.fixture
def restore_cs():
    """Put this process's local configuration back as it was after the test."""
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData

    saved = gConfigurationData.localCFG.clone()
    yield
    gConfigurationData.localCFG = saved
    gConfigurationData.sync()


@pytest.fixture(autouse=True)
def no_stale_vm_database():
    """VMStateClient keeps one VMDB per process; never hand a dropped test database to the next test."""
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    client_module._db = None
    yield
    client_module._db = None
