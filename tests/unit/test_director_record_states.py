"""What a VMDirector cycle tells VMDB of the listed VMs (Director/vmrecords.record_states): only
what the records read this cycle do not hold yet; the database keeps its own rules."""

from __future__ import annotations

from datetime import datetime, timezone

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.Resources.Cloud.model import VM, VMState
from JenniferDIRAC.WorkloadManagementSystem.Director.vmrecords import record_states
from JenniferDIRAC.WorkloadManagementSystem.Lifecycle.VMLifecycle import VMRecord

CE = "cloud.example.org"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 6, 1, 13, 0, tzinfo=timezone.utc)


class Client:
    """Takes setVMStates (the edge of this unit test)."""

    def __init__(self):
        self.sent = None

    def setVMStates(self, states, when=None):
        self.sent = states
        return S_OK(len(states))


class Log:
    def warn(self, *args):
        raise AssertionError(args)


def test_only_what_the_records_lack_is_sent():
    def vm(name, state, **extra):
        return VM(id=extra.pop("id", f"id-{name}"), name=name, state=state, **extra)

    def record(name, state, **extra):
        return VMRecord(vm_name=name, ce=CE, vm_id=extra.pop("vm_id", f"id-{name}"), cloud_state=state, **extra)

    vms = [
        vm("same", VMState.ACTIVE, launched=T0),
        vm("same-off", VMState.SHUTOFF, launched=T0, updated=T1),
        vm("booting", VMState.BUILD),
        vm("now-off", VMState.SHUTOFF, launched=T0, updated=T1),  # state changed
        vm("no-start", VMState.ACTIVE),  # running, no start recorded
        vm("no-end", VMState.SHUTOFF, updated=T1),  # terminal, no end recorded
        vm("faulty", VMState.ERROR, fault="No valid host", updated=T1),
        vm("new-id", VMState.BUILD, id="id-2"),  # the record has another id
        vm("deleting", VMState.DELETING),
        vm("unrecorded", VMState.ACTIVE),
    ]
    records = {r.vm_name: r for r in [
        record("same", "ACTIVE", started=T0),
        record("same-off", "SHUTOFF", started=T0, ended=T1),
        record("booting", "BUILD"),
        record("now-off", "ACTIVE", started=T0),
        record("no-start", "ACTIVE"),
        record("no-end", "SHUTOFF", started=T0),
        record("faulty", "ERROR", started=T0, ended=T1),
        record("new-id", "BUILD", vm_id=""),
        record("deleting", "ACTIVE", started=T0),
    ]}
    client = Client()
    record_states(client, vms, records, Log(), T1)
    assert sorted(client.sent) == ["faulty", "new-id", "no-end", "no-start", "now-off"]
    assert client.sent["now-off"] == {"state": "SHUTOFF", "vm_id": "id-now-off", "fault": "", "started": T0,
                                      "ended": T1}
    assert client.sent["faulty"]["fault"] == "No valid host"

    client = Client()
    record_states(client, vms[:3], records, Log(), T1)
    assert client.sent is None  # nothing changed: no call at all


def test_records_of_unchanged_rows_are_the_last_reads():
    """vm_records with KeptRecords: a row read again unchanged gives back the last read's
    (frozen) record; a changed row a new record of its new values; a row no longer read is
    forgotten; each CE keeps its own."""
    from datetime import datetime as naive

    from JenniferDIRAC.WorkloadManagementSystem.Director.vmrecords import KeptRecords, vm_records

    def row(name, state, ended=None, ce=CE):
        return {"vm_name": name, "ce": ce, "vm_id": f"id-{name}", "cloud_state": state,
                "created": naive(2026, 6, 1, 11), "started": naive(2026, 6, 1, 12), "ended": ended,
                "deleted": None, "accounted": 0}

    class Rows:
        def __init__(self, rows):
            self.rows = rows

        def getVMRows(self, ce, active_only=False, unaccounted_only=False):
            return S_OK([r for r in self.rows if r["ce"] == ce] if active_only else [])

    kept = KeptRecords()
    client = Rows([row("a", "ACTIVE"), row("b", "ACTIVE"), row("c", "ACTIVE"),
                   row("d", "ACTIVE", ce="other")])
    first = vm_records(client, CE, kept)
    other = vm_records(client, "other", kept)
    client.rows = [row("a", "ACTIVE"), row("b", "SHUTOFF", ended=naive(2026, 6, 1, 13)),
                   row("d", "ACTIVE", ce="other")]
    second = vm_records(client, CE, kept)

    assert sorted(second) == ["a", "b"]
    assert second["a"] is first["a"]
    assert second["b"] is not first["b"]
    assert (second["b"].cloud_state, second["b"].ended) == ("SHUTOFF", T1)
    assert second["a"].started == T0  # made aware once, kept aware
    client.rows.append(row("c", "ACTIVE"))  # forgotten: a record made again
    assert vm_records(client, CE, kept)["c"] is not first["c"]
    assert vm_records(client, "other", kept)["d"] is other["d"]


def test_a_service_without_getvmchanges_is_read_row_by_row_with_its_records_kept():
    """A client whose getVMChanges answers an error (a VMManager service older than it) reads
    every row through getVMRows each time, the records of unchanged rows kept between reads;
    once getVMChanges answers, a full read of changes, then only the changes."""
    from datetime import datetime as naive

    from JenniferDIRAC.WorkloadManagementSystem.Director import vmrecords
    from JenniferDIRAC.WorkloadManagementSystem.Director.vmrecords import KeptRecords, vm_records

    now = naive(2026, 6, 1, 14)

    def row(name, state):
        return {"vm_name": name, "ce": CE, "vm_id": f"id-{name}", "cloud_state": state,
                "created": naive(2026, 6, 1, 11), "started": naive(2026, 6, 1, 12), "ended": None,
                "deleted": None, "accounted": 0}

    class Service:
        def __init__(self, rows):
            self.rows, self.upgraded, self.asked, self.rows_reads = rows, False, [], 0

        def getVMRows(self, ce, active_only=False, unaccounted_only=False):
            self.rows_reads += 1
            return S_OK([dict(r) for r in self.rows] if active_only else [])

        def getVMChanges(self, ce, since=None):
            self.asked.append(since)
            if not self.upgraded:
                return S_ERROR("Unknown method getVMChanges")
            rows = [dict(r, changed_us=index) for index, r in enumerate(self.rows, 1)]
            stamps = sum(r["changed_us"] for r in rows)
            return S_OK({"now": now, "rows": rows if since is None else [], "count": len(rows), "stamps": stamps})

    kept = KeptRecords()
    service = Service([row("a", "ACTIVE"), row("b", "BUILD")])
    first = vm_records(service, CE, kept)
    service.rows = [row("a", "ACTIVE"), row("b", "ACTIVE")]
    second = vm_records(service, CE, kept)

    assert service.asked == [None, None] and service.rows_reads == 4  # each read: changes refused, every row
    assert list(second) == ["a", "b"] and second["a"] is first["a"]  # kept between reads
    assert second["b"] is not first["b"] and second["b"].cloud_state == "ACTIVE"
    service.upgraded = True
    third = vm_records(service, CE, kept)
    fourth = vm_records(service, CE, kept)
    assert service.asked == [None, None, None, now - vmrecords.CHANGE_MARGIN]  # a full read, then changes
    assert service.rows_reads == 4
    assert third == second and fourth == third and fourth["a"] is third["a"]
