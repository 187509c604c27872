"""Property: whatever a client sends, the endpoint answers with a deliberate status (never 500)
and writes only to the VM its token names."""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import VMStatus

AUTHORITY = TokenAuthority([b"fuzz-secret-0123456789abcdefghijklmnop"], clock=lambda: 1_800_000_000)
VMS = ["jdirac-a", "jdirac-b"]
TOKENS = {vm: AUTHORITY.issue(vm, 3600) for vm in VMS}


class RecordingStore:
    """Records which VM each write was for (the edge of this unit test)."""

    def __init__(self):
        self.writes = []

    def vm_status(self, vm_name):
        return VMStatus()

    def add_heartbeat(self, vm_name, when, load):
        self.writes.append(vm_name)

    def set_shutdown_message(self, vm_name, code, text):
        self.writes.append(vm_name)

    def store_log(self, vm_name, kind, content):
        self.writes.append(vm_name)

    def log_sizes(self, vm_name):
        return {}


def asgi_request(app, method: str, path: str, headers: dict, body: bytes) -> int:
    """One request straight into the ASGI app, as uvicorn would pass it (no client-side checks,
    so paths and headers no HTTP client would build get through too)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "path": path, "raw_path": path.encode("utf-8", "surrogateescape"), "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("203.0.113.9", 40000), "server": ("127.0.0.1", 8449), "scheme": "http", "root_path": "",
    }
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"]


segment = st.one_of(
    st.sampled_from(["vm", "v1", "jdirac-a", "jdirac-b", "heartbeat", "shutdown_message", "logs", "context",
                     "boot", "..", ".", "", "%2e%2e", "%2F", "shutdowntime", "a" * 70]),
    st.text(min_size=0, max_size=12),
)
random_path = st.lists(segment, min_size=0, max_size=6).map(lambda parts: "/" + "/".join(parts))
operation = st.sampled_from(["heartbeat", "shutdown_message", "logs/boot", "logs/pilot", "context/shutdowntime",
                             "logs/../boot", "logs/.x", "context/x"])
api_path = st.tuples(st.sampled_from(VMS + ["jdirac-c"]), operation).map(lambda p: f"/vm/v1/{p[0]}/{p[1]}")
path = st.one_of(api_path, random_path)
token = st.one_of(st.sampled_from(list(TOKENS.values())), st.text(max_size=80),
                  st.sampled_from(sorted(TOKENS.values())).map(lambda t: t[:-2] + "xx"))
authorization = st.one_of(st.none(), token.map(lambda t: "Bearer " + t), st.text(max_size=40))
body = st.one_of(st.binary(max_size=2000), st.sampled_from([b"200 ok", b"600 failed", b"1.0 1.0 1.0 1/1 1"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"]), path=path,
       authorization=authorization, body=body)
def test_no_500_and_no_write_to_another_vm(method, path, authorization, body):
    store = RecordingStore()
    app = VMEndpointApp(AUTHORITY, store, EndpointLimits(max_upload_bytes=1000, min_heartbeat_seconds=0),
                        clock=lambda: 1_800_000_000)
    headers = {} if authorization is None else {"Authorization": authorization}
    try:
        status = asgi_request(app, method, path, headers, body)
    except UnicodeEncodeError:
        return  # not representable in an HTTP header at all
    assert status in {200, 204, 400, 401, 403, 404, 405, 409, 413, 429}, (path, status)
    owner = next((vm for vm, t in TOKENS.items() if authorization == "Bearer " + t), None)
    assert set(store.writes) <= ({owner} if owner else set())
    if store.writes:
        assert path.startswith(f"/vm/v1/{owner}/")
