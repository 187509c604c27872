"""The bounded attack test: honest VMs keep being served while one hostile VM (or anyone on the
network) attacks the endpoint, and the server stays small. The same phases as
benchmarks/bench_endpoint_attack.py (which prints them beside v0.1.0's figures), shorter.

v0.1.0 (the issue's measurements): 1,000 idle sockets = 1,003 server threads; 70 slow uploads with
one token took every request slot (honest VMs and /health got 503); 8 pathological shutdown
messages stalled honest VMs for 18 s. Asserted here: 100 % honest success in every phase, a thread
count that does not grow with connections, and a bounded RSS. The p99 latencies are printed (a
speed target belongs in the benchmark, not in a timed test).
"""

import pytest

from benchmarks.bench_endpoint_attack import ATTACKS, run_phase, serve, table

pytestmark = pytest.mark.slow

HONEST_VMS = 20  # 60 requests per phase
MAX_THREADS = 40  # v0.1.0: 1,003 with 1,000 idle sockets
MAX_RSS_MIB = 400


@pytest.fixture
def attacked_endpoint(vmdb, tmp_path):
    with serve(vmdb.cfg, tmp_path) as server:
        yield server, vmdb.db


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda attack: attack.__name__)
def test_honest_vms_are_served_whatever_one_vm_does(attacked_endpoint, attack):
    server, db = attacked_endpoint
    phase = run_phase(server, db, attack, HONEST_VMS)
    print()
    print(table({"this tree": [phase]}))
    assert phase.honest.attempted == 3 * HONEST_VMS
    if attack.__name__ in ("IdleSockets", "SlowUploads"):  # the attack really was under way
        assert phase.detail.startswith("1000 " if attack.__name__ == "IdleSockets" else "70 "), phase.detail
    assert phase.honest.success_rate == 100.0, phase
    assert phase.max_threads <= MAX_THREADS, phase
    assert phase.max_rss_mib <= MAX_RSS_MIB, phase
    assert server.process.poll() is None  # the endpoint survived
