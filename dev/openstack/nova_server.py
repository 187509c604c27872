"""Real Nova 34 in ONE process: API (with keystonemiddleware), conductor, scheduler, placement
and fake-driver compute hosts, on oslo.messaging's fake transport with native threads.

Run with .venv-openstack's python by dev/openstack/launcher.py:
    nova_server.py <nova.conf> <workdir> <log file> <compute hosts>
It reuses Nova's own functional test base (nova.tests.functional.integrated_helpers), which
wires all services in-process, and corrects what that base does for unit-test speed but a
long-running server cannot live with (see real-openstack-on-loopback.md, "Pitfalls"). It writes
<workdir>/nova.port and <workdir>/standin.port when the servers listen.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings

os.environ["OS_NOVA_DISABLE_EVENTLET_PATCHING"] = "1"  # native threads, no eventlet monkeypatching

from nova import monkey_patch  # noqa: E402  (first: it selects native threading)

monkey_patch.patch()

import fixtures  # noqa: E402

from servelib import serve_in_thread  # noqa: E402

CONF_FILE, WORKDIR, LOG_FILE, HOSTS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.argv = sys.argv[:1]


def _log_to_file() -> None:
    handler = logging.FileHandler(LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("oslo_db.sqlalchemy", "alembic", "migrate", "stevedore", "keystoneauth",
                  "urllib3", "oslo_policy", "cheroot"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class FileLogging(fixtures.Fixture):
    """Pitfall 7: StandardLogging keeps every line in memory for ever; log to a file."""

    def _setUp(self) -> None:
        _log_to_file()
        self.useFixture(fixtures.MonkeyPatch("oslo_log.log.setup", lambda *a, **k: None))


class NoWarningsAsErrors(fixtures.Fixture):
    """Pitfall 2: WarningsFixture turns SQLAlchemy 2.1's noload() deprecation into an error
    (paged listings answered 500)."""

    def _setUp(self) -> None:
        warnings.simplefilter("ignore")


def _install_patches() -> None:
    import nova.config
    from nova.tests import fixtures as nova_fixtures

    real_parse_args = nova.config.parse_args

    def parse_args(argv, default_config_files=None, configure_db=True, init_rpc=True):
        # Pitfall 1: the test ConfFixture re-parses the config with no files: add ours.
        return real_parse_args(argv, default_config_files=[CONF_FILE], configure_db=configure_db,
                               init_rpc=init_rpc)

    nova.config.parse_args = parse_args
    nova_fixtures.StandardLogging = FileLogging
    nova_fixtures.WarningsFixture = NoWarningsAsErrors

    # Pitfall 4: the test-only cell lock (taken for every untargeted DB access and every
    # target_cell) and the DB write lock invert their order under load and freeze Nova. With
    # one cell, untargeted access goes to the default cell and targeting needs no lock.
    cells = nova_fixtures.CellDatabases

    def get_context_manager(self, context):
        connection = getattr(context, "db_connection", None)
        return connection or self._default_ctxt_mgr

    from contextlib import contextmanager

    @contextmanager
    def target_cell(self, context, cell_mapping):
        with self._real_target_cell(context, cell_mapping) as targeted:
            yield targeted

    cells._wrap_get_context_manager = get_context_manager
    cells._wrap_target_cell = target_cell


def main() -> None:
    os.environ["TMPDIR"] = os.path.join(WORKDIR, "tmp")  # Nova's temp sqlite files stay in workdir
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    _log_to_file()
    _install_patches()

    import futurist._thread
    from nova.tests.functional import integrated_helpers
    from standin import ImageStandIn, NetworkStandIn
    from keystonemiddleware import auth_token
    import nova.conf as nova_conf

    class RealNova(integrated_helpers._IntegratedTestBase):
        STUB_KEYSTONE = False  # real keystonemiddleware against our Keystone
        CAST_AS_CALL = False  # creates return 202 and build asynchronously, as in production

        def _setup_compute_service(self):
            first = None
            for index in range(HOSTS):
                compute = self._start_compute(f"compute{index}")
                first = first or compute
            return first

        def runTest(self) -> None:  # unittest needs one; never run
            pass

    nova = RealNova()
    nova.setUp()
    # Pitfall 5: nova.test sets futurist's idle timeout to 10 ms; hundreds of idle pool threads
    # waking every 10 ms starve the GIL.
    futurist._thread.ThreadWorker.MAX_IDLE_FOR = 1.0

    api_app = nova.api_fixture.app()
    serve_in_thread(api_app, os.path.join(WORKDIR, "nova.port"), threads=16, name="nova-api")

    def checked(app):
        return auth_token.AuthProtocol(app, {"oslo_config_config": nova_conf.CONF})

    images = ImageStandIn(lambda: nova.glance.detail(None))
    networks = NetworkStandIn(nova.neutron)

    def standin(environ, start_response):
        path = environ.get("PATH_INFO", "")
        for prefix, app in (("/image", image_app), ("/network", network_app)):
            if path == prefix or path.startswith(prefix + "/"):
                environ["PATH_INFO"] = path[len(prefix):] or "/"
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "unknown stand-in path"}']

    image_app, network_app = _public_root(images, checked(images)), _public_root(networks, checked(networks))
    serve_in_thread(standin, os.path.join(WORKDIR, "standin.port"), threads=8, name="standin")
    logging.getLogger("jdirac.realnova").info("Nova ready with %d compute host(s)", HOSTS)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    # Pitfall 8: stopping the services can hang behind a busy compute; state lives in workdir.
    os._exit(0)


def _public_root(public, checked):
    """Version discovery (GET /) is unauthenticated in Glance and Neutron too."""

    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") in ("", "/"):
            return public(environ, start_response)
        return checked(environ, start_response)

    return app


if __name__ == "__main__":
    main()
