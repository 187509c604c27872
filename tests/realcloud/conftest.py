"""The real-cloud tests: the conformance table is printed at the end of the run (CI logs); the
CE is made by tests/ce's fixtures (ce_fixtures.py), against the ``openstack_target`` a test gives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ce"))
from ce_fixtures import make_target_ce, wrapper  # noqa: E402, F401 - fixtures of the real-cloud tests


@pytest.fixture
def backend(real_openstack):
    """An OpenStackBackend of the demo project's member (password), in an emptied project that
    is emptied again afterwards."""
    from keystoneauth1.identity import v3

    from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend

    real_openstack.reset()
    demo = real_openstack.demo
    auth = v3.Password(auth_url=real_openstack.auth_url, username=demo["username"], password=demo["password"],
                       user_domain_name=demo["user_domain_name"], project_name=demo["project_name"],
                       project_domain_name=demo["project_domain_name"])
    backend = OpenStackBackend(auth=auth, secrets=[demo["password"]])
    yield backend
    backend.close()
    real_openstack.reset()


def pytest_terminal_summary(terminalreporter):
    try:
        from test_conformance import RESULTS
    except ImportError:
        return
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("LocalCloud vs real Nova 34 / Keystone 30: remaining differences")
    width = max(len(case) for case, _, _ in RESULTS)
    for case, diff, verdict in RESULTS:
        write(f"{case:<{width}}  {diff}  [{verdict}]")
