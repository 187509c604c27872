"""Fixtures for the cloud CE tests: a CE built by DIRAC's ComputingElementFactory against LocalCloud."""

from __future__ import annotations

import pytest
from ce_fixtures import db, make_ce, make_target_ce, wrapper  # noqa: F401 - fixtures of the CE tests


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
