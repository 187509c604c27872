"""The dirac-vm-* commands' switches declared as data (Admin/CommandSwitches.py): what each
switch sets, and the usage error naming a switch whose value is refused."""

from __future__ import annotations

import pytest

from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import (
    Switches,
    comma_list,
    number,
    positive_whole_number,
    upper_comma_list,
    whole_number,
)


@pytest.fixture
def registered(monkeypatch):
    """{long switch name: (help, callback)} as DIRAC's Script.registerSwitch is given them."""
    from DIRAC.Core.Base.Script import Script

    calls = {}

    def register(short, long, help_text, callback):
        assert short == ""  # short forms would clash with DIRAC's own (-s, -o, -d, ...)
        calls[long] = (help_text, callback)

    monkeypatch.setattr(Script, "registerSwitch", register)
    return calls


def test_each_switch_sets_its_value(registered):
    switches = Switches(ces=[], dry_run=False, output_dir="", filters=[], limit=None, console=True)
    switches.value("ce", "VMs of these CEs", comma_list, "ces")
    switches.value("output-dir", "write logs here")
    switches.value("limit", "at most this many", positive_whole_number)
    switches.repeated("filter", "Key=value", "filters")
    switches.flag("dry-run", "only show")
    switches.flag("no-console", "no console log", "console", False)
    assert set(registered) == {"ce=", "output-dir=", "limit=", "filter=", "dry-run", "no-console"}
    assert registered["ce="][0] == "VMs of these CEs"
    for switch, value in (("ce=", " a.example, b.example,,"), ("output-dir=", "/tmp/logs"), ("limit=", "5"),
                          ("filter=", "VO=belle"), ("filter=", "Site=CLOUD.A.it"), ("dry-run", ""),
                          ("no-console", "")):
        assert registered[switch][1](value)["OK"]
    options = switches.options
    assert options.ces == ["a.example", "b.example"] and options.output_dir == "/tmp/logs" and options.limit == 5
    assert options.filters == ["VO=belle", "Site=CLOUD.A.it"]
    assert options.dry_run is True and options.console is False


def test_a_refused_value_is_an_error_naming_the_switch(registered):
    switches = Switches(limit=None, width=0, weeks=0.0)
    switches.value("limit", "at most this many", positive_whole_number)
    switches.value("width", "pixels", whole_number)
    switches.value("weeks", "weeks", number)
    for switch, value, message in (("limit=", "ten", "--limit: 'ten' is not a number"),
                                   ("limit=", "0", "--limit: must be positive, not 0"),
                                   ("width=", "1.5", "--width: '1.5' is not a number"),
                                   ("weeks=", "a few", "--weeks: 'a few' is not a number")):
        result = registered[switch][1](value)
        assert not result["OK"] and result["Message"] == message
    assert (switches.options.limit, switches.options.width, switches.options.weeks) == (None, 0, 0.0)
    assert registered["weeks="][1]("2.5")["OK"] and switches.options.weeks == 2.5


def test_lists_of_states_are_in_capitals():
    assert upper_comma_list("active, Build") == ["ACTIVE", "BUILD"]
    assert comma_list(" , ") == []
