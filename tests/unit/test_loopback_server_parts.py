"""Small parts of the loopback server script (dev/loopback/server.py)."""

from dev.loopback.server import parse_job_status


def test_job_status_line_is_parsed():
    text = (
        "JobID=12 ApplicationStatus=Unknown; MinorStatus=Pilot Agent Submission; Status=Waiting; Site=ANY; \n"
    )
    assert parse_job_status(text) == {
        "JobID": "12",
        "ApplicationStatus": "Unknown",
        "MinorStatus": "Pilot Agent Submission",
        "Status": "Waiting",
        "Site": "ANY",
    }


def test_empty_output_gives_no_status():
    assert parse_job_status("") == {}
