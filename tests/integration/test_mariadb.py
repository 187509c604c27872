"""The private MariaDB server used by the integration and end-to-end tests."""

import os
import socket
from pathlib import Path

import MySQLdb
import pytest

from dev.mariadb import MariaDBError, MariaDBServer

DIRAC_SQL = Path(__import__("DIRAC").__file__).parent / "WorkloadManagementSystem" / "DB" / "JobDB.sql"


def test_user_can_use_a_created_database(mariadb):
    mariadb.create_database("FixtureCheckDB")
    conn = MySQLdb.connect(
        host=mariadb.host,
        port=mariadb.port,
        user=mariadb.user,
        password=mariadb.password,
        database="FixtureCheckDB",
    )
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (x INT)")
        cur.execute("INSERT INTO t VALUES (42)")
        cur.execute("SELECT x FROM t")
        assert cur.fetchall() == ((42,),)
    finally:
        conn.close()
        mariadb.drop_database("FixtureCheckDB")


def test_dirac_schema_loads_from_its_sql_file(mariadb):
    mariadb.create_database("JobDB", DIRAC_SQL)
    tables = {row[0] for row in mariadb.execute("SHOW TABLES", database="JobDB")}
    assert {"Jobs", "JobJDLs", "InputData"} <= tables
    mariadb.drop_database("JobDB")


def test_server_is_locked_down(mariadb):
    users = set(mariadb.execute("SELECT User, Host FROM mysql.user"))
    assert not any(user == "" for user, _ in users), "anonymous users must be removed"
    assert {("Dirac", "%"), ("Dirac", "localhost")} <= users
    with pytest.raises(MySQLdb.OperationalError):
        MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root", password="")
    with pytest.raises(MySQLdb.OperationalError):
        MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="nobody", password="")


def test_bad_database_name_is_refused(mariadb):
    with pytest.raises(MariaDBError, match="invalid database"):
        mariadb.create_database("x; DROP DATABASE mysql")


def test_restart_keeps_data_and_stop_leaves_nothing_running(tmp_path):
    server = MariaDBServer(tmp_path / "db")
    info = server.start()
    server.create_database("Kept")
    server.execute("CREATE TABLE t (x INT)", database="Kept")
    pid = server.pid()
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex((info.host, info.port)) != 0, "port still open after stop"

    info2 = server.start()
    try:
        assert info2.password == info.password
        assert server.execute("SHOW TABLES", database="Kept") == [("t",)]
    finally:
        server.destroy()
    assert not (tmp_path / "db").exists()
    assert server.pid() is None


def test_tied_server_dies_with_the_process_that_started_it(tmp_path):
    """A test session killed without teardown must not leave mariadbd running."""
    import subprocess
    import sys
    import time

    starter = (
        "import sys, threading\n"
        "from dev.mariadb import MariaDBServer\n"
        f"server = MariaDBServer({str(tmp_path / 'db')!r}, tied_to_parent=True)\n"
        "server.start()\n"
        "print(server.pid(), flush=True)\n"
        "threading.Event().wait()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", starter],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        pid = int(proc.stdout.readline())
        os.kill(pid, 0)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        MariaDBServer(tmp_path / "db").stop()
        pytest.fail("mariadbd outlived the process that started it")
