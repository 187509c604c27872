import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


# --- private MariaDB (dev/mariadb.py) ---------------------------------------------------------
@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """A private mariadbd on 127.0.0.1 for the whole session.

    Gives ``host``, ``port``, ``user``, ``password`` (the ``Dirac`` user) and
    ``create_database(name, sql_file=None)``; stopped and deleted at the end.
    """
    from dev.mariadb import MariaDBServer

    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"), tied_to_parent=True)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


# --- VMDB on the private MariaDB ---------------------------------------------------------------
@pytest.fixture
def vmdb(mariadb):
    """A fresh, empty VMDB (own database) configured in gConfig for this process.

    Gives ``db`` (a VMDB), ``dbname`` and ``cfg`` (the CS text that points a subprocess
    at the same database); the database is dropped afterwards.
    """
    import types
    import uuid

    from DIRAC import gConfig
    from diraccfg import CFG

    dbname = "VMDB_" + uuid.uuid4().hex[:12]
    mariadb.create_database(dbname)
    cfg_text = (
        "Systems\n{\n  Databases\n  {\n"
        f"    User = {mariadb.user}\n    Password = {mariadb.password}\n"
        f"    Host = {mariadb.host}\n    Port = {mariadb.port}\n  }}\n"
        "  WorkloadManagement\n  {\n    Databases\n    {\n      VMDB\n      {\n"
        f"        DBName = {dbname}\n      }}\n    }}\n  }}\n}}\n"
    )
    gConfig.loadCFG(CFG().loadFromBuffer(cfg_text))
    from JenniferDIRAC.WorkloadManagementSystem.DB.VMDB import VMDB

    try:
        yield types.SimpleNamespace(db=VMDB(), dbname=dbname, cfg=cfg_text)
    finally:
        mariadb.drop_database(dbname)


# --- PilotAgentsDB on the private MariaDB -----------------------------------------------------
@pytest.fixture
def pilotdb(mariadb, tmp_path):
    """A PilotAgentsDB of this test (DIRAC's own schema) under a unique name; gives the name,
    for a cfg's ``Systems/WorkloadManagement/Databases/PilotAgentsDB/DBName``."""
    import re
    import uuid

    import DIRAC

    schema = Path(DIRAC.__file__).parent / "WorkloadManagementSystem" / "DB" / "PilotAgentsDB.sql"
    name = "PilotAgentsDB_" + uuid.uuid4().hex[:10]
    sql = tmp_path / "pilotagents.sql"
    sql.write_text(re.sub(r"(?m)^USE .*;$", "", schema.read_text()))
    mariadb.create_database(name, sql)
    try:
        yield name
    finally:
        mariadb.drop_database(name)


# --- LocalCloud: loopback OpenStack (localcloud/JenniferLocalCloud) ----------------
@pytest.fixture
def local_cloud(request):
    """A started LocalCloud on 127.0.0.1:<random port>, stopped (VMs killed) afterwards.

    Boot is off by default; pass options with indirect parametrization, e.g.
    ``@pytest.mark.parametrize("local_cloud", [{"token_ttl": 60}], indirect=True)``.
    """
    from JenniferLocalCloud import LocalCloud

    options = dict(getattr(request, "param", None) or {})
    with LocalCloud(**options) as cloud:
        yield cloud


# --- loopback DIRAC server (dev/loopback/server.py) -------------------------------------------
@pytest.fixture(scope="session")
def dirac_server(tmp_path_factory, request):
    """A real DIRAC 9.1 server on 127.0.0.1 (DIPS services, MariaDB, executor) for the session.

    A ``dev.loopback.server.LoopbackServer``: ``submit_job``, ``wait_job_status``, ``get_output``,
    ``prepare_direct_pilot``, ``run_pilot_wrapper``, ``run`` (a ``dirac-*`` command as the user),
    ``server_env()``, ``start_component`` (an agent stopped with the server), ``mariadb``.
    At the end everything is stopped and checked gone; the directory (with ``logs/``) is deleted
    only if no test failed.
    """
    from dev.loopback.server import LoopbackServer

    root = tmp_path_factory.mktemp("dirac")
    server = LoopbackServer(root, tied_to_parent=True)
    server.up()
    try:
        yield server
    finally:
        server.down()
        leftovers = server.leftovers()
        failed = request.session.testsfailed
        if failed or leftovers:
            print(f"\nloopback DIRAC server logs kept in {server.roots.logs}")
        else:
            server.down(purge=True)
        assert not leftovers, f"loopback DIRAC server left behind: {leftovers}"


# --- real Keystone 30 + Nova 34 (dev/openstack, .venv-openstack) -----------------------------
@pytest.fixture(scope="session")
def real_openstack(tmp_path_factory, request):
    """Real Keystone and Nova on 127.0.0.1 for the whole session (tests/openstack_testkit.py).

    Started on first use, stopped (whole process tree) at the end; the logs stay, their folder
    printed, if any test failed.
    """
    from openstack_testkit import running_openstack

    workdir = tmp_path_factory.mktemp("openstack")
    with running_openstack(workdir, keep_logs=lambda: request.session.testsfailed > 0) as cloud:
        yield cloud
