"""The CE's FullResyncSeconds: its project's incremental view lists in full that often."""

from __future__ import annotations

import pytest
from ce_testkit import CE_NAME, INSTALLATION

from JenniferDIRAC.Resources.Cloud.backends import make_backend
from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.references import make_vm_name
from JenniferDIRAC.Resources.Cloud.sharedlisting import shared_project


@pytest.mark.parametrize("option, expected", [({}, (1, 2)), ({"FullResyncSeconds": "0"}, (3, 0))])
def test_full_resync_seconds_sets_how_often_the_ce_lists_in_full(make_ce, local_cloud, option, expected):
    owner = OwnerTags(installation=INSTALLATION, ce=CE_NAME)
    local_cloud.compute.add_server(make_vm_name(), local_cloud.project_id, status="ACTIVE",
                                   metadata=owner.to_metadata())
    ce = make_ce(ListingCacheSeconds=0, **option)  # each call lists
    for _ in range(3):
        assert ce.getCEStatus()["OK"]
    probe = make_backend(ce.cloudConfig)  # same project: the CE's shared view
    try:
        view = shared_project(probe, INSTALLATION).view
        assert (view.full_listings, view.incremental_listings) == expected
    finally:
        probe.close()
