"""The fixtures that make our CE through DIRAC's ComputingElementFactory (tests/cloudce_testkit.py),
shared by the CE tests (tests/ce/conftest.py) and the real-cloud tests (tests/realcloud/conftest.py),
which import them.

``make_target_ce`` needs an ``openstack_target`` fixture (tests/targets.py's LocalCloudTarget or
RealNovaTarget): tests/ce gives both clouds, tests/realcloud real Nova.
"""

from __future__ import annotations

import pytest
from ce_testkit import CE_NAME, ce_parameters, write_cloud_auth
from cloudce_testkit import MadeCEs, write_pilot_wrapper


@pytest.fixture
def make_ce(local_cloud, tmp_path):
    """make_ce(**options) -> our CE through ComputingElementFactory (CEType Cloud), against
    local_cloud with password credentials in a private CloudAuth file."""
    creds = local_cloud.credentials
    auth_file = write_cloud_auth(tmp_path / "cloud.auth", creds.username, creds.password)
    made = MadeCEs()

    def make(ce_name=CE_NAME, retry_delay=0.0, **options):
        return made.make(ce_name, ce_parameters(local_cloud, auth_file, **options), retry_delay)

    yield make
    made.shutdown()


@pytest.fixture
def make_target_ce(openstack_target, tmp_path):
    """make_target_ce(auth="password"|"application_credential"|"token", **options) -> our CE
    through ComputingElementFactory against ``openstack_target``."""
    from targets import target_ce_parameters, write_auth

    made = MadeCEs()

    def make(ce_name=CE_NAME, auth="password", retry_delay=0.0, **options):
        auth_file = write_auth(openstack_target, auth, tmp_path / f"{ce_name}-{auth}.auth")
        return made.make(ce_name, target_ce_parameters(openstack_target, auth_file, auth, **options), retry_delay)

    yield make
    made.shutdown()


@pytest.fixture
def db(vmdb, monkeypatch):
    """This test's VMDB, the one the CE's VMStateClient uses in this process."""
    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    monkeypatch.setattr(client_module, "_db", vmdb.db)
    return vmdb.db


@pytest.fixture
def wrapper(tmp_path):
    """A pilot wrapper script for submitJob."""
    return write_pilot_wrapper(tmp_path)
