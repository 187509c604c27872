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

    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"))
    server.start()
    try:
        yield server
    finally:
        server.destroy()
