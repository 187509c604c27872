"""The CE's parts (Resources/Computing/CloudCE) that decide without a cloud: what getJobOutput
returns, what VMDB records of a refused create, which unlisted VMs are still Submitted."""

from datetime import datetime, timedelta, timezone

from JenniferDIRAC.Resources.Cloud.errors import CloudUnreachable, FailureKind
from JenniferDIRAC.Resources.Cloud.model import VMSpec
from JenniferDIRAC.Resources.Cloud.submission import Outcome
from JenniferDIRAC.Resources.Computing.CloudCE.joboutput import pilot_output
from JenniferDIRAC.Resources.Computing.CloudCE.pilotrecords import NOT_CREATED_REASON_CHARS, RecentPilots, not_created


def spec(name):
    return VMSpec(name=name, image_id="i", flavor_id="f", user_data=b"", metadata={})


def test_output_has_what_exists_and_says_what_is_missing():
    text, missing = pilot_output("vm1", lambda: "boot ok", {"pilot": b"pilot log", "boot": b"\xffboot"})
    assert text.split("\n==== ") == [
        "==== console log of vm1 ====\nboot ok", "boot (uploaded by vm1) ====\n\ufffdboot", "pilot (uploaded by vm1) ====\npilot log",
    ]
    assert missing == []

    def down():
        raise CloudUnreachable("reading the console: timed out")

    text, missing = pilot_output("vm1", down, {"pilot": b"log"})
    assert missing == ["console log: reading the console: timed out"]
    assert text.endswith("==== not available ====\nconsole log: reading the console: timed out")
    text, missing = pilot_output("vm1", lambda: None, {})
    assert text == ""
    assert missing == ["console log: the VM no longer exists", "uploaded logs: none in the VM database"]


def test_a_refused_create_is_recorded_with_its_kind_an_uncertain_one_is_not():
    refused = Outcome(spec("a"), error="x" * 400, kind=FailureKind.QUOTA)
    untyped = Outcome(spec("b"), error="500")
    uncertain = Outcome(spec("c"), error="timed out", kind=FailureKind.UNREACHABLE, uncertain=True)
    records = not_created([refused, untyped, uncertain])
    assert records == {
        "a": {"reason": "x" * NOT_CREATED_REASON_CHARS, "failure_kind": "quota"},
        "b": {"reason": "500", "failure_kind": "cloud_fault"},
    }


def test_an_unlisted_vm_is_appearing_within_the_grace_unless_it_was_seen_or_deleted():
    recent = RecentPilots()
    recent.remember(600, appearing=["mine", "seen"])
    recent.remember(600, settled=["seen"])
    old = datetime.now(timezone.utc) - timedelta(seconds=3600)
    young = (datetime.now(timezone.utc) - timedelta(seconds=60)).replace(tzinfo=None)  # VMDB: naive UTC
    asked = []

    def records(names):
        asked.append(list(names))
        return [
            {"vm_name": "young", "created": young, "deleted": None},
            {"vm_name": "old", "created": old, "deleted": None},
            {"vm_name": "gone", "created": young, "deleted": young},
        ]

    appearing = recent.still_appearing(600, ["mine", "seen", "young", "old", "gone"], records)
    assert appearing == {"mine", "young"}
    assert asked == [["young", "old", "gone"]]  # what this CE remembers is not asked of VMDB
    assert recent.still_appearing(600, ["mine"], records) == {"mine"} and len(asked) == 1
    assert recent.still_appearing(0, ["mine"], records) == set()
