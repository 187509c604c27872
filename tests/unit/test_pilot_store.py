"""Where the VMDirector and the admin commands read pilot records (Client/PilotStore.py): one
choice, PilotAgentsDB where it is configured on this host, the PilotManager service otherwise."""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.DErrno import EWMSNOPILOT
from pilotdb_testkit import configure_pilotagentsdb, local_cs  # noqa: F401 (local_cs: a fixture)

from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import pilot_info, pilot_store

REF = "cloud://cloud.store.test/jdirac-" + "c" * 32


class Answers:
    """A store answering getPilotInfo with `answer` (the edge of this unit test)."""

    def __init__(self, answer):
        self.answer = answer

    def getPilotInfo(self, references):
        return self.answer


def test_pilots_unknown_to_the_store_are_an_empty_answer():
    assert pilot_info(
        Answers(S_ERROR(EWMSNOPILOT, f"No pilots found for PilotJobReference(s): {REF}")), [REF]
    ) == S_OK({})
    failed = pilot_info(Answers(S_ERROR("connection lost")), [REF])
    assert not failed["OK"] and failed["Message"] == "connection lost"
    assert pilot_info(Answers(S_OK({REF: {"Status": "Running"}})), [REF])["Value"] == {
        REF: {"Status": "Running"}
    }


def test_without_pilotagentsdb_on_this_host_the_pilotmanager_service_is_used(local_cs):
    from DIRAC.ConfigurationSystem.Client.Utilities import getDBParameters
    from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

    assert not getDBParameters("WorkloadManagement/PilotAgentsDB")["OK"]
    chosen = pilot_store()
    assert isinstance(chosen.store, PilotManagerClient)
    assert chosen.name == "the WorkloadManagement/PilotManager service"


def test_pilotagentsdb_configured_on_this_host_is_read_directly(local_cs, vmdb, pilotdb, mariadb):
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    configure_pilotagentsdb(local_cs, pilotdb)
    mariadb.execute(
        "INSERT INTO PilotAgents (PilotJobReference, VO, GridType, Status, PilotStamp, SubmissionTime) "
        f"VALUES ('{REF}', 'belle', 'Cloud', 'Running', '{'d' * 32}', UTC_TIMESTAMP())",
        database=pilotdb,
    )
    chosen = pilot_store()
    assert isinstance(chosen.store, PilotAgentsDB) and chosen.name == "WorkloadManagement/PilotAgentsDB"
    assert pilot_info(chosen.store, [REF])["Value"][REF]["Status"] == "Running"
    assert pilot_info(chosen.store, [REF.replace("c" * 32, "e" * 32)]) == S_OK({})  # DIRAC's EWMSNOPILOT


def test_pilot_rows_in_one_statement_read_what_dirac_s_calls_read(local_cs, vmdb, pilotdb, mariadb):
    """pilot_rows on DIRAC's PilotAgentsDB schema: one statement of ours answers as
    selectPilots + getPilotInfo do (the referenced pilots, the CE's transient ones; the newest job)."""
    from DIRAC.WorkloadManagementSystem.DB.PilotAgentsDB import PilotAgentsDB

    from JenniferDIRAC.WorkloadManagementSystem.Client.PilotStore import _pilot_rows_by_calls, pilot_rows, pilot_time

    configure_pilotagentsdb(local_cs, pilotdb)
    ce, other = "cloud.store.test", "other.store.test"

    def ref(letter, site=ce):
        return f"cloud://{site}/jdirac-{letter * 32}"

    pilots = [  # (reference, site, status, jobs)
        (ref("a"), ce, "Running", [7, 12]),  # referenced, two jobs
        (ref("b"), ce, "Done", []),  # referenced, final, no job
        (ref("c"), ce, "Submitted", []),  # transient, not referenced
        (ref("d"), ce, "Done", [3]),  # final, not referenced: not read
        (ref("e", other), other, "Running", []),  # another CE's transient: not read
    ]
    for number, (reference, site, status, jobs) in enumerate(pilots, 1):
        mariadb.execute(
            "INSERT INTO PilotAgents (PilotID, PilotJobReference, VO, GridType, DestinationSite, Status, "
            "PilotStamp, SubmissionTime, LastUpdateTime) VALUES "
            f"({number}, '{reference}', 'belle', 'Cloud', '{site}', '{status}', '{'d' * 32}', "
            f"UTC_TIMESTAMP() - INTERVAL {number} HOUR, UTC_TIMESTAMP() - INTERVAL {number} MINUTE)",
            database=pilotdb,
        )
        for job in jobs:
            mariadb.execute(f"INSERT INTO JobToPilotMapping (PilotID, JobID, StartTime) VALUES ({number}, {job}, "
                            "UTC_TIMESTAMP())", database=pilotdb)
    db = PilotAgentsDB()
    transient = ["Running", "Scheduled", "Submitted", "Waiting"]
    referenced = [ref("a"), ref("b"), ref("z")]  # z: unknown

    ours = pilot_rows(db, ce, transient, referenced)
    theirs = _pilot_rows_by_calls(db, ce, transient, referenced)  # DIRAC's selectPilots + getPilotInfo

    assert ours["OK"] and theirs["OK"]
    by_reference = {row[0]: row for row in ours["Value"]}
    dirac_by_reference = {row[0]: row for row in theirs["Value"]}
    assert len(by_reference) == len(ours["Value"])  # one row per reference
    assert sorted(by_reference) == sorted(dirac_by_reference) == [ref("a"), ref("b"), ref("c")]
    for reference, (_, status, updated, submitted, job) in by_reference.items():
        _, dirac_status, dirac_updated, dirac_submitted, dirac_job = dirac_by_reference[reference]
        assert status == dirac_status
        assert pilot_time(updated) == dirac_updated and dirac_updated is not None
        assert pilot_time(submitted) == dirac_submitted and dirac_submitted is not None
        assert job == dirac_job  # the newest of getPilotInfo's Jobs, 0 without one
    assert by_reference[ref("a")][4] == 12 and by_reference[ref("b")][4] == 0
    transient_only = pilot_rows(db, ce, transient, [ref("z")])["Value"]  # the CE's transient pilots
    assert {row[0]: row for row in transient_only} == {r: by_reference[r] for r in (ref("a"), ref("c"))}
    assert len(transient_only) == 2
    assert pilot_rows(db, other, [], []) == {"OK": True, "Value": []}
