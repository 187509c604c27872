"""A create whose outcome is unknown is uncertain, never "not created": the backends tell a
request sent and never answered (CloudNoAnswer) from one refused or never sent, on real
sockets; the batch leaves such a VM uncertain even when a lookup finds nothing yet."""

from __future__ import annotations

import socket
import threading

import pytest
import requests
from keystoneauth1 import session as ks_session
from test_ce_submission_unit import MemoryCloud, run, specs

from JenniferDIRAC.Resources.Cloud.errors import CloudNoAnswer, CloudUnreachable, FailureKind
from JenniferDIRAC.Resources.Cloud.noanswer import sent_without_answer
from JenniferDIRAC.Resources.Cloud.openstackerrors import translate_error
from JenniferDIRAC.Resources.Cloud.submission import Outcome
from JenniferDIRAC.Resources.Computing.CloudCE.pilotrecords import create_uncertain, not_created
from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.schema import CREATE_UNCERTAIN_STATE


class LateCloud(MemoryCloud):
    """Steps "noanswer" (sent, no answer; the VM lands at the next list/lookup after `lands`
    lookups) and "refused" (a 503 answer: nothing created) on top of MemoryCloud's."""

    def __init__(self, plan, lookup_fails=0, lands_after=99):
        super().__init__(plan=plan, lookup_fails=lookup_fails)
        self.lands_after, self.lookups = lands_after, 0

    def create_vm(self, spec):
        step = self.plan[0] if self.plan else "ok"
        if step == "noanswer":
            self.plan.pop(0)
            self.creates += 1
            self.late.append(spec)
            raise CloudNoAnswer("creating server: ReadTimeout")
        if step == "refused":
            self.plan.pop(0)
            self.creates += 1
            raise CloudUnreachable("creating server: HTTP 503")
        return super().create_vm(spec)

    def find_vm_by_name(self, name, owner):
        self.lookups += 1
        if self.lookups > self.lands_after:
            while self.late:
                self._new(self.late.pop())
        return super().find_vm_by_name(name, owner)


def test_an_unanswered_create_whose_lookup_fails_then_finds_nothing_is_uncertain():
    cloud = LateCloud(plan=["noanswer"], lookup_fails=1)
    result = run(cloud, 1, attempts=2)
    (outcome,) = result.outcomes
    assert outcome.vm is None and outcome.uncertain  # was: a failure, marked deleted
    assert cloud.creates == 1  # never created blind again
    assert create_uncertain(result.failed) == {specs(1)[0].name: CREATE_UNCERTAIN_STATE}
    assert not_created(result.failed) == {}  # nothing recorded as deleted


def test_an_unanswered_create_found_by_the_last_lookup_is_created():
    cloud = LateCloud(plan=["noanswer"], lookup_fails=1, lands_after=1)
    result = run(cloud, 1, attempts=2)
    assert [o.vm.name for o in result.created] == [specs(1)[0].name] and cloud.creates == 1


def test_a_refused_create_that_no_lookup_finds_is_not_created():
    cloud = LateCloud(plan=["refused"])
    result = run(cloud, 1, attempts=1)
    (outcome,) = result.failed
    assert not outcome.uncertain and outcome.kind is FailureKind.UNREACHABLE
    assert set(not_created(result.failed)) == {specs(1)[0].name} and create_uncertain(result.failed) == {}


def test_an_unexpected_exception_in_the_last_create_is_uncertain():
    class Buggy(MemoryCloud):
        def create_vm(self, spec):
            self.creates += 1
            raise KeyError("server")

    result = run(Buggy(), 1, attempts=1)
    (outcome,) = result.failed
    assert outcome.uncertain and outcome.unanswered  # an answer it could not read may hide a VM
    assert set(create_uncertain(result.failed)) == {specs(1)[0].name} and not_created(result.failed) == {}


def test_an_answered_error_whose_lookups_fail_is_uncertain_but_its_pilot_not_returned():
    result = run(LateCloud(plan=["refused"], lookup_fails=1), 1, attempts=1)
    (outcome,) = result.failed
    assert outcome.uncertain and create_uncertain(result.failed) == {}


def test_an_unanswered_create_then_a_refused_one_may_still_land():
    # the first create may land after the lookup that found nothing and the refused second one
    result = run(LateCloud(plan=["noanswer", "refused"]), 1, attempts=2)
    (outcome,) = result.failed
    assert outcome.recreated and outcome.uncertain and outcome.unanswered
    assert set(create_uncertain(result.failed)) == {specs(1)[0].name}


def test_create_uncertain_keeps_only_uncertain_outcomes():
    spec_a, spec_b = specs(2)
    outcomes = [Outcome(spec_a, error="timed out", uncertain=True, unanswered=True), Outcome(spec_b, error="refused")]
    assert create_uncertain(outcomes) == {spec_a.name: CREATE_UNCERTAIN_STATE}


# --- what the exceptions say, on real sockets ----------------------------------------------------
@pytest.fixture
def server():
    """A TCP server on loopback: mode "silent" reads and never answers, "close" reads and closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    state = {"mode": "silent", "conns": []}

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            if state["mode"] == "close":
                conn.close()
            else:
                state["conns"].append(conn)

    threading.Thread(target=serve, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}/v2.1/servers"
    yield state
    listener.close()
    for conn in state["conns"]:
        conn.close()


def closed_port_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}/v2.1/servers"


def raised(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the exception is what is tested
        return exc
    raise AssertionError("no exception")


def test_requests_read_timeout_and_closed_connection_are_sent_without_answer(server):
    assert sent_without_answer(raised(lambda: requests.post(server["url"], data=b"{}", timeout=0.3)))
    server["mode"] = "close"
    assert sent_without_answer(raised(lambda: requests.post(server["url"], data=b"{}", timeout=5)))


def test_a_refused_connection_was_never_sent():
    exc = raised(lambda: requests.post(closed_port_url(), data=b"{}", timeout=5))
    assert isinstance(exc, requests.ConnectionError) and not sent_without_answer(exc)


def test_keystoneauth_errors_become_no_answer_only_when_sent(server):
    session = ks_session.Session()
    redact = lambda text: text  # noqa: E731 - nothing secret here

    def post(url, timeout):
        return lambda: session.post(url, json={}, timeout=timeout, authenticated=False, connect_retries=0)

    timed_out = translate_error(raised(post(server["url"], 0.3)), "creating server", redact)
    refused = translate_error(raised(post(closed_port_url(), 5)), "creating server", redact)
    server["mode"] = "close"
    dropped = translate_error(raised(post(server["url"], 5)), "creating server", redact)
    assert isinstance(timed_out, CloudNoAnswer) and isinstance(dropped, CloudNoAnswer)
    assert isinstance(refused, CloudUnreachable) and not isinstance(refused, CloudNoAnswer)
