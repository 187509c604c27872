"""PilotRecords keeps each CE's last read: a pilot read again unchanged is the same (frozen)
PilotRecord, a changed one a new record, and only the references of the last read are kept."""

from __future__ import annotations

from datetime import UTC, datetime

from DIRAC import S_OK
from pilotdb_testkit import configure_pilotagentsdb, local_cs  # noqa: F401 (local_cs: a fixture)

from JenniferDIRAC.WorkloadManagementSystem.Director.pilotrecords import PilotRecords

CE, OTHER = "cloud.kept.test", "other.kept.test"
WHEN = datetime(2026, 6, 1, 12, 0)


def ref(letter: str, ce: str = CE) -> str:
    return f"cloud://{ce}/jdirac-{letter * 32}"


class Store:
    """The PilotManager service's answers (the edge of this unit test): `pilots` {reference: info}."""

    def __init__(self, pilots):
        self.pilots = pilots

    def selectPilots(self, cond):
        return S_OK([])

    def getPilotInfo(self, refs):
        return S_OK({r: dict(self.pilots[r]) for r in refs if r in self.pilots})


def info(status="Running", updated=WHEN, jobs=(7,)):
    return {"Status": status, "LastUpdateTime": updated, "SubmissionTime": WHEN, "Jobs": list(jobs)}


def test_an_unchanged_pilot_is_the_same_record_a_changed_one_a_new_one():
    store = Store({ref("a"): info(), ref("b"): info(), ref("c"): info(jobs=())})
    pilots = PilotRecords(store)
    first = pilots.records(CE, {ref("a"), ref("b"), ref("c")})
    store.pilots[ref("b")] = info("Done", WHEN.replace(minute=5))
    second = pilots.records(CE, {ref("a"), ref("b"), ref("c")})

    assert second[ref("a")] is first[ref("a")] and second[ref("c")] is first[ref("c")]
    assert second[ref("b")] is not first[ref("b")]
    assert second[ref("b")].status == "Done" and second[ref("b")].last_update == datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    assert second[ref("c")].job_id == 0 and second[ref("a")].job_id == 7
    assert first[ref("b")].status == "Running"  # what the first read gave is left as it was


def kept(pilots: PilotRecords, ce: str) -> set[str]:
    return {reference for read in pilots._kept[ce] for reference in read}


def test_only_the_last_two_reads_of_each_ce_are_kept():
    store = Store({ref(letter): info() for letter in "abcd"} | {ref("x", OTHER): info()})
    pilots = PilotRecords(store)
    first = pilots.records(CE, {ref("a"), ref("b")})
    other = pilots.records(OTHER, {ref("x", OTHER)})
    pilots.records(CE, {ref("c")})  # a cycle's second read: listed VMs without a VM record
    again = pilots.records(CE, {ref("a"), ref("b")})  # the next cycle's first

    assert again[ref("a")] is first[ref("a")] and again[ref("b")] is first[ref("b")]
    assert kept(pilots, CE) == {ref("a"), ref("b"), ref("c")}
    pilots.records(CE, {ref("d")})
    assert kept(pilots, CE) == {ref("a"), ref("b"), ref("d")}  # c was in neither of the last two reads
    pilots.records(CE, {ref("d")})
    assert kept(pilots, CE) == {ref("d")}
    assert pilots.records(OTHER, {ref("x", OTHER)})[ref("x", OTHER)] is other[ref("x", OTHER)]
    fresh = pilots.records(CE, {ref("a")})[ref("a")]
    assert fresh is not first[ref("a")] and fresh == first[ref("a")]  # forgotten, read again


def test_pilotagentsdb_rows_are_kept_until_they_change(local_cs, vmdb, pilotdb, mariadb):
    """On DIRAC's PilotAgentsDB: the same records while nothing changes, a new one for the pilot
    whose status, time or job changed, with the times DIRAC's getPilotInfo reads."""
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    configure_pilotagentsdb(local_cs, pilotdb)
    for number, letter in enumerate("abc", 1):
        mariadb.execute(
            "INSERT INTO PilotAgents (PilotID, PilotJobReference, VO, GridType, DestinationSite, Status, PilotStamp, "
            f"SubmissionTime, LastUpdateTime) VALUES ({number}, '{ref(letter)}', 'belle', 'Cloud', '{CE}', 'Running', "
            f"'{'d' * 32}', '2026-06-01 10:00:0{number}', '2026-06-01 11:00:0{number}')", database=pilotdb)
    db = PilotAgentsDB()
    pilots = PilotRecords(db)
    wanted = {ref("a"), ref("b"), ref("c")}
    first = pilots.records(CE, wanted)
    mariadb.execute("UPDATE PilotAgents SET Status = 'Done' WHERE PilotID = 2", database=pilotdb)
    mariadb.execute("INSERT INTO JobToPilotMapping (PilotID, JobID, StartTime) VALUES (3, 42, UTC_TIMESTAMP())",
                    database=pilotdb)
    second = pilots.records(CE, wanted)

    assert second[ref("a")] is first[ref("a")]
    assert second[ref("b")].status == "Done" and second[ref("b")] is not first[ref("b")]
    assert second[ref("c")].job_id == 42 and first[ref("c")].job_id == 0
    dirac = db.getPilotInfo(sorted(wanted))["Value"]
    for reference, record in second.items():
        assert record.last_update == dirac[reference]["LastUpdateTime"].replace(tzinfo=UTC)
        assert record.submitted == dirac[reference]["SubmissionTime"].replace(tzinfo=UTC)
    assert second[ref("a")].submitted == datetime(2026, 6, 1, 10, 0, 1, tzinfo=UTC)


def test_the_database_s_times_are_read_as_mysqldb_reads_a_datetime():
    from MySQLdb.times import DateTime_or_None

    from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import pilot_time

    texts = ["2026-12-03 11:00:00", "0000-00-00 00:00:00", "2026-02-30 11:00:00", "2026-12-03 24:00:00",
             "2026-12-03 11:00:00.5", "2026-12-03 11:00:00.123456", "9999-12-31 23:59:59"]
    assert [pilot_time(text) for text in texts] == [DateTime_or_None(text) for text in texts]
    assert pilot_time(texts[0]) == datetime(2026, 12, 3, 11) and pilot_time(texts[1]) is None
    assert pilot_time(None) is None and pilot_time(WHEN) is WHEN  # the service's datetimes as they are


def test_references_that_need_escaping_are_read_too(local_cs, vmdb, pilotdb, mariadb):
    """Plain cloud:// references go into the statement quoted as they are; a chunk with any
    other one (a quote, a %) is sent as arguments and read all the same."""
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import pilot_rows

    configure_pilotagentsdb(local_cs, pilotdb)
    odd = f"cloud://{CE}/it's-100%"
    for number, reference in enumerate((ref("a"), odd), 1):
        mariadb.execute(
            "INSERT INTO PilotAgents (PilotID, PilotJobReference, VO, GridType, DestinationSite, Status, PilotStamp) "
            "VALUES (%s, %s, 'belle', 'Cloud', %s, 'Done', %s)", database=pilotdb,
            params=(number, reference, CE, "d" * 32))
    db = PilotAgentsDB()
    plain = pilot_rows(db, CE, [], [ref("a"), ref("z")])
    both = pilot_rows(db, CE, [], [ref("a"), odd, "x' OR '1'='1"])
    assert plain["OK"] and [row[:2] for row in plain["Value"]] == [(ref("a"), "Done")]
    assert both["OK"] and sorted(row[:2] for row in both["Value"]) == sorted([(ref("a"), "Done"), (odd, "Done")])
    assert PilotRecords(db).records(CE, {odd})[odd].status == "Done"
