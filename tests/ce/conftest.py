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
