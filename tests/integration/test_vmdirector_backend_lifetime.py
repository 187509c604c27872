"""What the VMDirector's CEBackends keeps between cycles ends with what uses it: a project gone
from the CS takes its DELETE threads with it, and the agent's finalize ends every pool and cloud
connection (real openstacksdk against LocalCloud)."""

from __future__ import annotations

from unittest.mock import MagicMock

from test_full_resync_option import parameters

from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import NullDirectorMetrics


def test_a_project_gone_from_the_cs_closes_its_delete_threads_and_finalize_closes_the_rest(local_cloud, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ces = {
        "a.lifetime.test": parameters(local_cloud, tmp_path / "a", InstallationName="install-a"),
        "b.lifetime.test": parameters(local_cloud, tmp_path / "b", InstallationName="install-b"),
    }
    backends = CEBackends(NullDirectorMetrics(), MagicMock())
    with backends.one_listing_per_project():
        assert backends.by_project(list(ces.items())) == [["a.lifetime.test"], ["b.lifetime.test"]]
    pools = dict(backends.deleters)
    assert len(pools) == 2  # two installations in the project: two keys

    with backends.one_listing_per_project():
        assert backends.by_project([("a.lifetime.test", ces["a.lifetime.test"])]) == [["a.lifetime.test"]]
    (kept,) = backends.deleters.values()
    (gone,) = [pool for pool in pools.values() if pool is not kept]
    assert gone._pool._shutdown and not kept._pool._shutdown

    closed = []
    for ce, (_, backend) in backends.cached.items():
        real_close = backend.close
        backend.close = lambda ce=ce, real_close=real_close: (closed.append(ce), real_close())
    backends.close()
    assert kept._pool._shutdown
    assert backends.deleters == {} and backends.cached == {}
    assert sorted(closed) == sorted(ces)
