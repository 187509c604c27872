"""FullResyncSeconds: how often the project's incremental view (changes-since) lists in full,
for the VMDirector's listing of a project (real openstacksdk against LocalCloud)."""

from __future__ import annotations

import os
from unittest.mock import MagicMock

import pytest

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.sharedlisting import FULL_RESYNC_SECONDS

CE = "resync.director.test"


def parameters(local_cloud, tmp_path, **options):
    c = local_cloud.credentials
    auth = tmp_path / "cloud.auth"
    auth.write_text(f"[DEFAULT]\nkey = {c.username}\nsecret = {c.password}\n")
    os.chmod(auth, 0o600)
    return {"CloudType": "OPENSTACK", "CloudAuth": str(auth), "AuthURL": c.auth_url,
            "ProjectName": c.project_name, "InstallationName": "install-resync",
            "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small", **options}


def listings_of_cycles(local_cloud, params, cycles):
    """(full, incremental) listings the VMDirector's CEBackends made in `cycles` cycles of a
    project holding one VM of the CE (its `updated` time is where changes-since starts)."""
    from JenniferDIRAC.Resources.Cloud.model import OwnerTags
    from JenniferDIRAC.Resources.Cloud.references import make_vm_name

    owner = OwnerTags(installation=params["InstallationName"], ce=CE)
    local_cloud.compute.add_server(make_vm_name(), local_cloud.project_id, status="ACTIVE",
                                   metadata=owner.to_metadata())
    from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
    from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import NullDirectorMetrics

    backends = CEBackends(NullDirectorMetrics(), MagicMock())
    try:
        for _ in range(cycles):
            with backends.one_listing_per_project():
                assert len(backends.listing(CE, params)[2]) == 1
        (listing,) = backends.projects.values()
        return listing.project.view.full_listings, listing.project.view.incremental_listings
    finally:
        for _, backend in backends.cached.values():
            backend.close()


def test_the_default_lists_in_full_once_then_incrementally(local_cloud, tmp_path):
    assert listings_of_cycles(local_cloud, parameters(local_cloud, tmp_path), 3) == (1, 2)


def test_full_resync_seconds_zero_lists_in_full_every_cycle(local_cloud, tmp_path):
    assert listings_of_cycles(local_cloud, parameters(local_cloud, tmp_path, FullResyncSeconds="0"), 3) == (3, 0)


def test_the_option_is_parsed_with_its_default_and_its_name_in_errors(local_cloud, tmp_path):
    params = parameters(local_cloud, tmp_path)
    assert CloudCEConfig.parse(CE, params).full_resync_seconds == FULL_RESYNC_SECONDS == 600
    assert CloudCEConfig.parse(CE, dict(params, FullResyncSeconds="120")).full_resync_seconds == 120
    for bad in ("soon", "-1"):
        with pytest.raises(ConfigurationError, match="FullResyncSeconds"):
            CloudCEConfig.parse(CE, dict(params, FullResyncSeconds=bad))
