"""The VM endpoint over real HTTP, storing into a real VMDB: every operation, and hostile clients."""

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority


def ok(result):
    assert result["OK"], result.get("Message")
    return result["Value"]


def vm(db, name):
    return ok(db.getVMs(names=[name]))[0]


# --- every operation -----------------------------------------------------------------------------
def test_health_needs_no_token(endpoint):
    response = requests.get(endpoint.url + "/health", timeout=10)
    assert response.status_code == 200 and response.text == "ok\n"


def test_heartbeat_is_stored_with_load(endpoint):
    token = endpoint.register("jdirac-hb")["jdirac-hb"]
    response = endpoint.call("POST", "jdirac-hb", "heartbeat", token, data=b"0.52 0.40 0.33 2/181 4242\n")
    assert response.status_code == 204
    record = vm(endpoint.db, "jdirac-hb")
    assert record["last_heartbeat"] is not None
    beats = ok(endpoint.db.getHeartbeats("jdirac-hb"))
    assert len(beats) == 1 and "0.52 0.40 0.33" in beats[0][1]


def test_heartbeats_too_close_together_are_refused_then_accepted(endpoint):
    token = endpoint.register("jdirac-hb2")["jdirac-hb2"]
    assert endpoint.call("POST", "jdirac-hb2", "heartbeat", token).status_code == 204
    endpoint.clock.now += 3
    early = endpoint.call("POST", "jdirac-hb2", "heartbeat", token)
    assert early.status_code == 429 and early.headers["Retry-After"] == "7"
    endpoint.clock.now += 7
    assert endpoint.call("POST", "jdirac-hb2", "heartbeat", token).status_code == 204
    assert len(ok(endpoint.db.getHeartbeats("jdirac-hb2"))) == 2


def test_logs_are_stored_and_replaced(endpoint):
    token = endpoint.register("jdirac-logs")["jdirac-logs"]
    boot = b"cloud-init output\n" * 100
    assert endpoint.call("PUT", "jdirac-logs", "logs/boot", token, data=boot).status_code == 204
    assert endpoint.call("PUT", "jdirac-logs", "logs/pilot", token, data=b"pilot says hi\n").status_code == 204
    assert ok(endpoint.db.getLogs("jdirac-logs")) == {"boot": boot, "pilot": b"pilot says hi\n"}
    assert endpoint.call("PUT", "jdirac-logs", "logs/boot", token, data=b"final boot log\n").status_code == 204
    assert ok(endpoint.db.getLogs("jdirac-logs"))["boot"] == b"final boot log\n"


def test_binary_and_chunked_log_uploads(endpoint):
    token = endpoint.register("jdirac-bin")["jdirac-bin"]
    blob = bytes(range(256)) * 40
    response = endpoint.call("PUT", "jdirac-bin", "logs/core.bin", token, data=iter([blob[:5000], blob[5000:]]))
    assert response.status_code == 204
    assert ok(endpoint.db.getLogs("jdirac-bin"))["core.bin"] == blob


def test_shutdown_message_is_stored(endpoint):
    token = endpoint.register("jdirac-sd")["jdirac-sd"]
    response = endpoint.call("PUT", "jdirac-sd", "shutdown_message", token, data=b"300 No more work available from task queue\n")
    assert response.status_code == 204
    record = vm(endpoint.db, "jdirac-sd")
    assert record["shutdown_code"] == 300
    assert record["shutdown_message"] == "No more work available from task queue"
    # A retry of the same message is fine; a different one never replaces the first.
    again = endpoint.call("PUT", "jdirac-sd", "shutdown_message", token, data=b"300 No more work available from task queue")
    assert again.status_code == 204
    other = endpoint.call("PUT", "jdirac-sd", "shutdown_message", token, data=b"200")
    assert other.status_code == 409 and "first one is kept" in other.text
    record = vm(endpoint.db, "jdirac-sd")
    assert (record["shutdown_code"], record["shutdown_message"]) == (300, "No more work available from task queue")


def test_context_files_are_served_and_confined(endpoint):
    token = endpoint.register("jdirac-ctx")["jdirac-ctx"]
    response = endpoint.call("GET", "jdirac-ctx", "context/machinefeatures.json", token)
    assert response.status_code == 200 and response.json() == {"hs06": 10}
    assert endpoint.call("GET", "jdirac-ctx", "context/missing", token).status_code == 404
    assert endpoint.call("GET", "jdirac-ctx", "context/escape.txt", token).status_code == 404  # symlink out
    assert endpoint.call("GET", "jdirac-ctx", "context/machinefeatures.json").status_code == 401


def test_shutdowntime_is_the_end_of_the_vms_lifetime(endpoint):
    endpoint.register("jdirac-mjf")
    token = endpoint.authority.issue_for_vm("jdirac-mjf", 7200)
    response = endpoint.call("GET", "jdirac-mjf", "context/shutdowntime", token)
    assert response.status_code == 200
    assert int(response.text) == int(endpoint.clock.now) + 7200


# --- hostile tokens -------------------------------------------------------------------------------
def test_missing_and_malformed_authorization_is_401(endpoint):
    endpoint.register("jdirac-auth")
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwdw=="},
                    {"Authorization": "Bearer " + "x" * 5000}, {"Authorization": "Bearer jdv1.jdirac-auth.1.\x01"}):
        response = endpoint.call("POST", "jdirac-auth", "heartbeat", headers=dict(headers))
        assert response.status_code == 401, headers
    response = endpoint.call("POST", "jdirac-auth", "heartbeat")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert vm(endpoint.db, "jdirac-auth")["last_heartbeat"] is None


def test_forged_token_is_401(endpoint):
    token = endpoint.register("jdirac-forged")["jdirac-forged"]
    prefix, name, expires, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    extended = str(int(expires) + 10 * 86400)
    other_secret = TokenAuthority([b"another-secret-that-is-long-enough-1234"], clock=endpoint.clock)
    for forged in (
        ".".join((prefix, name, expires, flipped)),
        ".".join((prefix, name, extended, signature)),
        other_secret.issue("jdirac-forged", 3600),
    ):
        assert endpoint.call("PUT", "jdirac-forged", "logs/boot", forged, data=b"forged").status_code == 401
    assert ok(endpoint.db.getLogs("jdirac-forged")) == {}


def test_swapped_token_is_403_and_touches_nothing(endpoint):
    tokens = endpoint.register("jdirac-victim", "jdirac-attacker")
    attacker = tokens["jdirac-attacker"]
    assert endpoint.call("PUT", "jdirac-victim", "logs/boot", attacker, data=b"fake").status_code == 403
    assert endpoint.call("PUT", "jdirac-victim", "shutdown_message", attacker, data=b"500 fake").status_code == 403
    assert endpoint.call("POST", "jdirac-victim", "heartbeat", attacker).status_code == 403
    assert endpoint.call("GET", "jdirac-victim", "context/machinefeatures.json", attacker).status_code == 403
    victim = vm(endpoint.db, "jdirac-victim")
    assert victim["last_heartbeat"] is None and victim["shutdown_code"] is None
    assert ok(endpoint.db.getLogs("jdirac-victim")) == {}
    assert any("token of jdirac-attacker used for jdirac-victim" in message for _, message in endpoint.events)
    assert not any(attacker in message for _, message in endpoint.events)  # tokens never logged


def test_expired_token_is_401(endpoint):
    token = endpoint.register("jdirac-old")["jdirac-old"]
    assert endpoint.call("POST", "jdirac-old", "heartbeat", token).status_code == 204
    endpoint.clock.now += 3600
    response = endpoint.call("PUT", "jdirac-old", "logs/boot", token, data=b"too late")
    assert response.status_code == 401 and "expired" in response.text
    assert ok(endpoint.db.getLogs("jdirac-old")) == {}


def test_valid_token_for_a_vm_the_database_does_not_know_is_404(endpoint):
    token = endpoint.authority.issue("jdirac-ghost", 3600)
    assert endpoint.call("POST", "jdirac-ghost", "heartbeat", token).status_code == 404
    assert endpoint.call("PUT", "jdirac-ghost", "shutdown_message", token, data=b"200 ok").status_code == 404


# --- sizes, names, garbage ------------------------------------------------------------------------
def test_oversize_bodies_are_413(endpoint):
    token = endpoint.register("jdirac-big")["jdirac-big"]
    limit = endpoint.limits.max_upload_bytes
    assert endpoint.call("PUT", "jdirac-big", "logs/boot", token, data=b"x" * (limit + 1)).status_code == 413
    chunks = iter([b"y" * 40000, b"y" * 40000])  # chunked, no Content-Length
    assert endpoint.call("PUT", "jdirac-big", "logs/boot", token, data=chunks).status_code == 413
    assert endpoint.call("POST", "jdirac-big", "heartbeat", token, data=b"z" * 1000).status_code == 413
    assert endpoint.call("PUT", "jdirac-big", "shutdown_message", token, data=b"200 " + b"w" * 5000).status_code == 413
    assert ok(endpoint.db.getLogs("jdirac-big")) == {}
    assert endpoint.call("PUT", "jdirac-big", "logs/boot", token, data=b"x" * limit).status_code == 204


def test_per_vm_limits(endpoint):
    token = endpoint.register("jdirac-greedy")["jdirac-greedy"]
    chunk = b"a" * 60 * 1024
    assert endpoint.call("PUT", "jdirac-greedy", "logs/one", token, data=chunk).status_code == 204
    assert endpoint.call("PUT", "jdirac-greedy", "logs/two", token, data=chunk).status_code == 204
    response = endpoint.call("PUT", "jdirac-greedy", "logs/three", token, data=chunk)
    assert response.status_code == 413 and "per VM" in response.text
    # Replacing a log counts its new size, not both.
    assert endpoint.call("PUT", "jdirac-greedy", "logs/two", token, data=chunk).status_code == 204
    for name in ("three", "four"):
        assert endpoint.call("PUT", "jdirac-greedy", f"logs/{name}", token, data=b"small").status_code == 204
    response = endpoint.call("PUT", "jdirac-greedy", "logs/five", token, data=b"small")
    assert response.status_code == 413 and "logs per VM" in response.text
    assert set(ok(endpoint.db.getLogs("jdirac-greedy"))) == {"one", "two", "three", "four"}


def test_per_vm_limit_survives_an_endpoint_restart(endpoint):
    """A fresh endpoint learns what a VM already stored from the database."""
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import VMEndpointApp

    token = endpoint.register("jdirac-restart")["jdirac-restart"]
    chunk = b"b" * 60 * 1024
    for name in ("one", "two"):
        assert endpoint.call("PUT", "jdirac-restart", f"logs/{name}", token, data=chunk).status_code == 204
    from starlette.testclient import TestClient

    fresh = VMEndpointApp(endpoint.authority, endpoint.app.store, endpoint.limits, clock=endpoint.clock)
    with TestClient(fresh) as client:
        response = client.put(
            "/vm/v1/jdirac-restart/logs/three", content=chunk, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "path",
    ["logs/..", "logs/../shutdown_message", "logs/.hidden", "logs/a%2Fb", "logs/..%2F..%2Fetc%2Fpasswd",
     "logs/" + "n" * 40, "logs/", "logs/a b", "logs/%00", "context/..%2Foutside.txt", "context/.", "nothing",
     "logs/a/b"],
)
def test_unsafe_names_are_refused_and_store_nothing(endpoint, path):
    token = endpoint.register("jdirac-trav")["jdirac-trav"]
    method = "GET" if path.startswith("context") else "PUT"
    response = endpoint.call(method, "jdirac-trav", path, token, data=b"evil")
    # 400: the client normalised "logs/../shutdown_message" and "evil" is no shutdown message.
    assert response.status_code in (400, 404, 405), response.status_code
    assert ok(endpoint.db.getLogs("jdirac-trav")) == {}
    assert vm(endpoint.db, "jdirac-trav")["shutdown_code"] is None


def test_wrong_methods_and_paths(endpoint):
    token = endpoint.register("jdirac-meth")["jdirac-meth"]
    assert endpoint.call("GET", "jdirac-meth", "heartbeat", token).status_code == 405
    assert endpoint.call("DELETE", "jdirac-meth", "logs/boot", token).status_code == 405
    assert endpoint.call("POST", "jdirac-meth", "shutdown_message", token, data=b"200").status_code == 405
    assert requests.get(endpoint.url + "/", timeout=10).status_code == 404
    assert requests.get(endpoint.url + "/vm/v1/", timeout=10).status_code == 404
    assert requests.post(endpoint.url + "/vm/v1/../x/heartbeat", timeout=10).status_code == 404
    assert requests.post(endpoint.url + "/vm/v1/a.b/heartbeat", timeout=10).status_code == 404
    assert requests.get(endpoint.url + "/" + "a" * 20000, timeout=10).status_code in (404, 414)


@pytest.mark.parametrize(
    "body",
    [b"", b"hello", b"99 too small", b"800 too big", b"2000 four digits", b"\xff\xfe\x00garbage",
     b"200 text\x00with nul", b"200 line\nbreak and more"],
)
def test_malformed_shutdown_messages_are_400(endpoint, body):
    token = endpoint.register("jdirac-badsd")["jdirac-badsd"]
    response = endpoint.call("PUT", "jdirac-badsd", "shutdown_message", token, data=body)
    assert response.status_code == 400
    assert vm(endpoint.db, "jdirac-badsd")["shutdown_code"] is None


def test_raw_garbage_on_the_socket_does_not_hurt_the_endpoint(endpoint):
    host, port = endpoint.server.host, endpoint.server.port
    garbage = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),  # a TLS hello on plain HTTP
        b"GARBAGE\r\n\r\n",
        b"PUT /vm/v1/x/logs/boot HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"PUT /vm/v1/x/logs/boot HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\nabc",
        b"POST /vm/v1/x/heartbeat HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
        b"GET /health HTTP/1.1\r\n" + b"X-Long: " + b"h" * 100000 + b"\r\n\r\n",
        bytes(range(256)) * 10,
    ]
    for payload in garbage:
        with socket.create_connection((host, port), timeout=10) as sock:
            try:
                sock.sendall(payload)
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:  # ENOTCONN: the endpoint already answered and closed
                    pass
                reply = sock.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                reply = b""
            assert not reply.startswith(b"HTTP/1.1 2") and not reply.startswith(b"HTTP/1.0 2")
            assert b" 500 " not in reply
    token = endpoint.register("jdirac-after")["jdirac-after"]
    assert endpoint.call("POST", "jdirac-after", "heartbeat", token).status_code == 204
    assert 500 not in endpoint.app.counters


def test_store_failure_is_503_not_a_crash(endpoint):
    from starlette.testclient import TestClient

    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import VMEndpointApp
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import StoreError

    class DownStore:
        def __getattr__(self, name):
            def fail(*args):
                raise StoreError("database unreachable")

            return fail

    app = VMEndpointApp(endpoint.authority, DownStore(), clock=endpoint.clock)
    token = endpoint.authority.issue("jdirac-down", 600)
    with TestClient(app) as client:
        response = client.post("/vm/v1/jdirac-down/heartbeat", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503 and response.headers["Retry-After"]


# --- concurrency ----------------------------------------------------------------------------------
def test_many_concurrent_vms_lose_nothing_and_attackers_get_nothing(endpoint):
    names = [f"jdirac-conc{i:02d}" for i in range(24)]
    tokens = endpoint.register(*names)
    expected_logs = {name: {"boot": f"boot of {name}\n".encode() * 500, "pilot": f"pilot {name}\n".encode() * 50}
                     for name in names}

    def honest(method, name, path, data):
        # Like the VM's curl: retry while the endpoint says it is busy.
        session = requests.Session()
        try:
            for _ in range(50):
                response = session.request(method, f"{endpoint.url}/vm/v1/{name}/{path}", data=data,
                                           headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=30)
                if response.status_code != 503:
                    return response.status_code
            return 503
        finally:
            session.close()

    def hostile(i):
        victim, attacker = names[i % len(names)], names[(i + 1) % len(names)]
        response = requests.put(f"{endpoint.url}/vm/v1/{victim}/logs/boot", data=b"overwritten!",
                                headers={"Authorization": f"Bearer {tokens[attacker]}"}, timeout=30)
        return response.status_code

    jobs = []
    for name in names:
        jobs.append(("POST", name, "heartbeat", b"1.0 1.0 1.0 1/1 1"))
        for kind, content in expected_logs[name].items():
            jobs.append(("PUT", name, f"logs/{kind}", content))
        jobs.append(("PUT", name, "shutdown_message", b"200 Intended work completed ok"))
    with ThreadPoolExecutor(max_workers=24) as pool:
        honest_results = [pool.submit(honest, *job) for job in jobs]
        hostile_results = [pool.submit(hostile, i) for i in range(48)]
        assert [f.result() for f in honest_results] == [204] * len(jobs)
        assert {f.result() for f in hostile_results} <= {403, 503}
        assert 403 in {f.result() for f in hostile_results}

    for name in names:
        assert ok(endpoint.db.getLogs(name)) == expected_logs[name]
        record = vm(endpoint.db, name)
        assert record["shutdown_code"] == 200 and record["last_heartbeat"] is not None
    assert 500 not in endpoint.app.counters


def test_silent_clients_do_not_block_others(endpoint):
    """Connections that never send a request do not block the server (they cost no thread)."""
    host, port = endpoint.server.host, endpoint.server.port
    idle = [socket.create_connection((host, port), timeout=10) for _ in range(5)]
    try:
        token = endpoint.register("jdirac-busy")["jdirac-busy"]
        assert endpoint.call("POST", "jdirac-busy", "heartbeat", token).status_code == 204
    finally:
        for sock in idle:
            sock.close()


# --- TLS ------------------------------------------------------------------------------------------
@pytest.fixture
def certificate(tmp_path):
    import subprocess

    cert, key = tmp_path / "hostcert.pem", tmp_path / "hostkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_https_with_a_silent_client_still_serves_others(endpoint, certificate):
    from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer, TLSFiles

    cert, key = certificate
    server = EndpointServer(endpoint.app, "127.0.0.1", 0, tls=TLSFiles(str(cert), str(key)))
    server.start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        # A client that connects but never starts the TLS handshake.
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            token = endpoint.register("jdirac-tls")["jdirac-tls"]
            response = requests.put(f"{server.url}/vm/v1/jdirac-tls/logs/boot", data=b"over TLS",
                                    headers={"Authorization": f"Bearer {token}"}, verify=str(cert), timeout=20)
            assert response.status_code == 204
            assert ok(endpoint.db.getLogs("jdirac-tls")) == {"boot": b"over TLS"}
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(f"http://127.0.0.1:{server.port}/health", timeout=10)  # plain HTTP on TLS port
            assert requests.get(f"{server.url}/health", verify=str(cert), timeout=10).status_code == 200
        finally:
            silent.close()
    finally:
        server.stop()


def test_idle_vms_are_forgotten(endpoint):
    token = endpoint.register("jdirac-idle")["jdirac-idle"]
    assert endpoint.call("POST", "jdirac-idle", "heartbeat", token).status_code == 204
    assert endpoint.app.forget_vms_older_than(60) == 0
    endpoint.clock.now += 61
    assert endpoint.app.forget_vms_older_than(60) == 1
    assert endpoint.app.forget_vms_older_than(60) == 0
