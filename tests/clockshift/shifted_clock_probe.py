"""Collected only by the year-ahead run (test_year_ahead.py names this file on its command line):
every clock the suites depend on must read the shifted time, or that run proves nothing.

JDIRAC_REAL_EPOCH is the real time the outer test started the run, JDIRAC_CLOCK_SHIFT_SECONDS the
shift it asked faketime for.
"""

import datetime as dt
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

#: The run itself may take this long between the outer test's start and a probe.
SLACK_SECONDS = 3 * 3600


@pytest.fixture(scope="module")
def expected():
    try:
        return float(os.environ["JDIRAC_REAL_EPOCH"]) + float(os.environ["JDIRAC_CLOCK_SHIFT_SECONDS"])
    except KeyError as missing:
        pytest.fail(f"{missing} is not set: run this file through tests/clockshift/test_year_ahead.py")


def assert_shifted(seen: float, expected: float, what: str) -> None:
    assert 0 <= seen - expected <= SLACK_SECONDS, (
        f"{what} reads {dt.datetime.fromtimestamp(seen, dt.timezone.utc):%Y-%m-%d %H:%M}, not the shifted "
        f"{dt.datetime.fromtimestamp(expected, dt.timezone.utc):%Y-%m-%d %H:%M}"
    )


def test_python_clocks_are_shifted(expected):
    assert_shifted(time.time(), expected, "time.time()")
    assert_shifted(dt.datetime.now(dt.timezone.utc).timestamp(), expected, "datetime.now()")
    # Sleeping and monotonic timeouts still work (FAKETIME_DONT_FAKE_MONOTONIC=1 breaks time.sleep
    # with EINVAL in libfaketime 0.9.10, so monotonic is shifted too and must keep running).
    start = time.monotonic()
    time.sleep(0.01)
    assert time.monotonic() > start


def test_child_processes_are_shifted(expected):
    """The dirac-* commands and openssl the suites start inherit the shift."""
    out = subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert_shifted(float(out), expected, "a child process")


def test_mariadb_is_shifted(mariadb, expected):
    """VMDB compares with UTC_TIMESTAMP() in SQL: the private mariadbd must be shifted too."""
    ((now,),) = mariadb.execute("SELECT UNIX_TIMESTAMP()")
    assert_shifted(float(now), expected, "MariaDB's UNIX_TIMESTAMP()")


def test_openssl_checks_certificates_at_the_shifted_time(tmp_path, expected):
    """The openssl command signs a one-day certificate at the shifted time, and this process's
    libssl accepts it: to an unshifted libssl it would not be valid yet."""
    from cryptography import x509

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   capture_output=True, check=True, timeout=60)
    not_before = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_before_utc
    assert_shifted(not_before.timestamp() + 1, expected, "openssl's notBefore")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    client_ctx.check_hostname = False
    left, right = socket.socketpair()
    server_errors = []

    def serve():
        try:
            with server_ctx.wrap_socket(left, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            server_errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(right) as tls:
            tls.sendall(b"x")
    finally:
        right.close()
        thread.join(timeout=30)
        left.close()
    assert server_errors == []
