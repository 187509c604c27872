"""A private MariaDB server for the tests and the demo.

``MariaDBServer(base_dir).start()`` initialises a data directory under ``base_dir``, runs
``mariadbd`` on 127.0.0.1 with a free TCP port and a UNIX socket, sets the root password, removes
the anonymous users and creates the database user (``Dirac`` by default, as DIRAC expects).
All state lives in ``base_dir`` (``state.json`` holds port and passwords), so a later process can
``MariaDBServer(base_dir).stop()`` a server that an earlier one started.

Command line::

    python dev/mariadb.py start --dir DIR     # prints host, port, socket, user
    python dev/mariadb.py stop --dir DIR

Over 400 lines and kept whole: it is one server's life (initialise, start, secure, connect,
stop), each step reading and writing the same ``state.json`` and data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import MySQLdb

HOST = "127.0.0.1"
# The privileges DIRAC's ComponentInstaller grants its database user.
DIRAC_DB_PRIVILEGES = (
    "SELECT,INSERT,LOCK TABLES,UPDATE,DELETE,CREATE,DROP,ALTER,REFERENCES,CREATE VIEW,SHOW VIEW,"
    "INDEX,TRIGGER,ALTER ROUTINE,CREATE ROUTINE,CREATE TEMPORARY TABLES"
)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class MariaDBError(RuntimeError):
    """The private MariaDB server could not be set up, used or stopped."""


@dataclass(frozen=True)
class MariaDBInfo:
    """How to reach a running private server."""

    host: str
    port: int
    socket: str
    user: str
    password: str
    root_password: str

    def __repr__(self) -> str:  # keep passwords out of logs and assertion messages
        return (
            f"MariaDBInfo(host={self.host!r}, port={self.port}, socket={self.socket!r}, user={self.user!r})"
        )


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the process that started it dies (Linux), so a
    killed test session leaves no server behind."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _check_identifier(name: str) -> str:
    if not name or not all(ch.isalnum() or ch == "_" for ch in name):
        raise MariaDBError(f"invalid database or user name {name!r}: use letters, digits and '_'")
    return name


class MariaDBServer:
    """One mariadbd process whose whole state lives in ``base_dir``."""

    def __init__(
        self, base_dir: str | os.PathLike, user: str = "Dirac", tied_to_parent: bool = False
    ) -> None:
        """``tied_to_parent``: mariadbd stops when the process that started it dies (for tests)."""
        self.base_dir = Path(base_dir).resolve()
        self.tied_to_parent = tied_to_parent
        self.user = _check_identifier(user)
        self.datadir = self.base_dir / "data"
        # UNIX socket paths are limited to 107 bytes: fall back to a short private directory.
        sock = self.base_dir / "mysqld.sock"
        self.socket = str(sock) if len(str(sock)) < 100 else None
        self.pid_file = self.base_dir / "mysqld.pid"
        self.log_file = self.base_dir / "mysqld.log"
        self.state_file = self.base_dir / "state.json"
        self.client_cnf = self.base_dir / "client.cnf"

    # --- state -------------------------------------------------------------------------------
    @property
    def info(self) -> MariaDBInfo:
        try:
            return MariaDBInfo(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            raise MariaDBError(f"no MariaDB server state in {self.base_dir}: start it first") from None

    @property
    def host(self) -> str:
        return self.info.host

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def password(self) -> str:
        """The database user's password."""
        return self.info.password

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    # --- life cycle --------------------------------------------------------------------------
    def start(self, port: int | None = None) -> MariaDBInfo:
        """Initialise (first time) and start the server; idempotent if already running."""
        if self.is_running():
            return self.info
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.socket is None:
            import tempfile

            self.socket = os.path.join(tempfile.mkdtemp(prefix="mdb"), "mysqld.sock")
        fresh = not (self.datadir / "mysql").is_dir()
        if fresh:
            self._install_db()
        previous = self._read_state()
        for attempt in range(3):
            chosen = port or (previous.port if previous else None) or free_port()
            proc = self._spawn(chosen)
            try:
                self._wait_ready(proc, fresh, previous)
                break
            except _PortTaken:
                self._reap(proc)
                if port or attempt == 2:
                    raise MariaDBError(f"port {chosen} on {HOST} is in use; see {self.log_file}") from None
                previous = None if previous is None else MariaDBInfo(**{**asdict(previous), "port": 0})
        if fresh or previous is None:
            info = self._secure(chosen, previous)
        else:
            info = MariaDBInfo(**{**asdict(previous), "port": chosen, "socket": self.socket})
        self._write_state(info)
        return info

    def stop(self) -> None:
        """Stop the server and wait until the process is gone (SIGTERM, then SIGKILL)."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)

    def destroy(self) -> None:
        """Stop the server and delete its whole directory."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- use ---------------------------------------------------------------------------------
    def connect(self, database: str | None = None, as_root: bool = True):
        """A MySQLdb connection over TCP (root or the database user)."""
        info = self.info
        kwargs = {"host": info.host, "port": info.port, "connect_timeout": 10}
        if as_root:
            kwargs.update(user="root", password=info.root_password)
        else:
            kwargs.update(user=info.user, password=info.password)
        if database:
            kwargs["database"] = database
        return MySQLdb.connect(**kwargs)

    def execute(self, sql: str, database: str | None = None, params: tuple | None = None) -> list[tuple]:
        """Run one statement as root (``%s`` placeholders filled from ``params``) and return its rows."""
        conn = self.connect(database)
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            rows = list(cur.fetchall()) if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def create_database(self, name: str, sql_file: str | os.PathLike | None = None) -> None:
        """Create ``name`` (if missing), grant it to the database user, load ``sql_file``."""
        _check_identifier(name)
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        for host in ("%", "localhost"):
            self.execute(f"GRANT {DIRAC_DB_PRIVILEGES} ON `{name}`.* TO '{self.user}'@'{host}'")
        self.execute("FLUSH PRIVILEGES")
        if sql_file is not None:
            self.load_sql(name, sql_file)

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS `{_check_identifier(name)}`")

    def load_sql(self, database: str, sql_file: str | os.PathLike) -> None:
        """Feed an SQL script (DELIMITER blocks included) to the ``mariadb`` client."""
        client = shutil.which("mariadb") or shutil.which("mysql")
        if client is None:
            raise MariaDBError("the mariadb client is not installed (apt package mariadb-client)")
        with open(sql_file, "rb") as script:
            res = subprocess.run(
                [client, f"--defaults-extra-file={self.client_cnf}", _check_identifier(database)],
                stdin=script,
                capture_output=True,
                timeout=120,
            )
        if res.returncode != 0:
            raise MariaDBError(f"loading {sql_file} into {database} failed: {res.stderr.decode().strip()}")

    # --- internals ---------------------------------------------------------------------------
    def _private_tmpdir(self) -> Path:
        # The server's temporary tables live beside its data, not in the shared /tmp, which
        # other programs on the machine may clean while the server runs.
        tmpdir = self.datadir.parent / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        return tmpdir

    def _install_db(self) -> None:
        tool = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if tool is None:
            raise MariaDBError("mariadb-install-db not found (apt package mariadb-server)")
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [
            tool,
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--tmpdir={self._private_tmpdir()}",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        res = subprocess.run(cmd, capture_output=True, timeout=120)
        if res.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise MariaDBError(f"mariadb-install-db failed: {res.stderr.decode()[-2000:]}")

    def _spawn(self, port: int) -> subprocess.Popen:
        server = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
        if not os.path.exists(server):
            raise MariaDBError("mariadbd not found (apt package mariadb-server)")
        cmd = [
            server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={port}",
            f"--bind-address={HOST}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_file}",
            f"--tmpdir={self._private_tmpdir()}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--max-connections=500",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        self.pid_file.unlink(missing_ok=True)
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        # Own session: the server outlives the process that started it and ignores its Ctrl-C.
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if self.tied_to_parent else None,
        )

    def _wait_ready(self, proc: subprocess.Popen, fresh: bool, previous: MariaDBInfo | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = self._new_log()
                if "Address already in use" in log or "Can't start server: Bind" in log:
                    raise _PortTaken()
                raise MariaDBError(f"mariadbd exited with {proc.returncode}: {log[-2000:]}")
            if os.path.exists(self.socket) and self._can_connect(fresh, previous):
                return
            time.sleep(0.1)
        self._reap(proc)
        raise MariaDBError(
            f"mariadbd did not accept connections within {START_TIMEOUT:.0f} s; see {self.log_file}"
        )

    def _can_connect(self, fresh: bool, previous: MariaDBInfo | None) -> bool:
        password = "" if (fresh or previous is None) else previous.root_password
        try:
            MySQLdb.connect(unix_socket=self.socket, user="root", password=password).close()
            return True
        except MySQLdb.OperationalError:
            return False

    def _secure(self, port: int, previous: MariaDBInfo | None) -> MariaDBInfo:
        root_pw = previous.root_password if previous else secrets.token_hex(12)
        user_pw = previous.password if previous else secrets.token_hex(12)
        conn = MySQLdb.connect(unix_socket=self.socket, user="root", password="")
        try:
            cur = conn.cursor()
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"CREATE USER IF NOT EXISTS 'root'@'{host}' IDENTIFIED BY %s", (root_pw,))
                cur.execute(f"ALTER USER 'root'@'{host}' IDENTIFIED BY %s", (root_pw,))
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' WITH GRANT OPTION")
            cur.execute("DELETE FROM mysql.global_priv WHERE User=''")
            cur.execute(
                "DELETE FROM mysql.global_priv WHERE User='root' AND Host NOT IN ('localhost', '127.0.0.1')"
            )
            # GRANT does not create users in MariaDB; DIRAC's tools only GRANT.
            for host in ("%", "localhost"):
                cur.execute(
                    f"CREATE USER IF NOT EXISTS '{self.user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s",
                    (user_pw,),
                )
            cur.execute("FLUSH PRIVILEGES")
            conn.commit()
        finally:
            conn.close()
        info = MariaDBInfo(HOST, port, self.socket, self.user, user_pw, root_pw)
        self._write_client_cnf(info)
        return info

    def _write_state(self, info: MariaDBInfo) -> None:
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(info), out)
        self._write_client_cnf(info)

    def _write_client_cnf(self, info: MariaDBInfo) -> None:
        fd = os.open(self.client_cnf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"[client]\nuser=root\npassword={info.root_password}\nsocket={info.socket}\n")

    def _read_state(self) -> MariaDBInfo | None:
        try:
            return self.info
        except MariaDBError:
            return None

    def _new_log(self) -> str:
        try:
            with open(self.log_file, errors="replace") as log:
                log.seek(self._log_offset)
                return log.read()
        except FileNotFoundError:
            return ""

    @staticmethod
    def _reap(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _PortTaken(Exception):
    pass


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; otherwise just probe it.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", required=True, help="directory holding the data directory and state")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    args = parser.parse_args(argv)
    server = MariaDBServer(args.dir)
    try:
        if args.action == "start":
            info = server.start(args.port)
            print(f"host={info.host} port={info.port} socket={info.socket} user={info.user}")
            print(f"state={server.state_file}")
        elif args.action == "stop":
            server.stop()
        else:
            print("running" if server.is_running() else "stopped")
            return 0 if server.is_running() else 3
    except MariaDBError as exc:
        print(f"mariadb: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
