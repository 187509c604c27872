"""The VMDirector reads exactly the options its ConfigTemplate.cfg section documents."""

from pathlib import Path
from unittest.mock import MagicMock

import pytest
from DIRAC.tests.Utilities.assertingUtils import checkAgentOptions

import JenniferDIRAC.WorkloadManagementSystem.Agent.VMDirector as module
from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle


def _agent(options=None):
    """A VMDirector whose AgentModule machinery is replaced by an option lookup."""
    options = options or {}
    agent = object.__new__(module.VMDirector)
    getOption = MagicMock(side_effect=lambda name, default=None: options.get(name, default))
    agent.am_getOption = getOption
    agent.log = MagicMock()
    return agent, getOption


def test_initialize_reads_exactly_the_template_options():
    agent, getOption = _agent()
    assert agent.initialize()["OK"]
    checkAgentOptions(getOption, "WorkloadManagementSystem", "VMDirector", str(Path(module.__file__).parent))


def test_a_missing_template_option_is_detected():
    agent, getOption = _agent()
    agent.initialize()
    getOption("NotInTemplate", 5)
    with pytest.raises(AssertionError):
        checkAgentOptions(
            getOption, "WorkloadManagementSystem", "VMDirector", str(Path(module.__file__).parent)
        )


def test_negative_threshold_is_refused_naming_the_option():
    agent, _ = _agent({"BootTimeout": -5})
    result = agent.initialize()
    assert not result["OK"] and "BootTimeout" in result["Message"]


class _Config:
    ce_name = "cloud.example.org"
    context_max_lifetime = 7200


def test_ce_options_override_thresholds_and_lifetime_follows_the_ce():
    agent, _ = _agent({"ZombieGrace": 100, "ShutdownGrace": 600})
    assert agent.initialize()["OK"]
    th = agent.thresholdOptions.thresholds({"BootTimeout": "300"}, _Config())
    assert th.boot_timeout == 300 and th.zombie_grace == 100
    assert th.max_lifetime == 7200 + 600  # Context_MaxLifetime plus the time to power off
    assert agent.thresholdOptions.thresholds({"MaxLifetime": "5000"}, _Config()).max_lifetime == 5000


def test_bad_ce_threshold_skips_the_ce_naming_the_option():
    agent, _ = _agent()
    agent.initialize()
    with pytest.raises(CENotServedThisCycle, match="CS option FizzleSeconds of CE cloud.example.org"):
        agent.thresholdOptions.thresholds({"FizzleSeconds": "soon"}, _Config())


@pytest.mark.parametrize("option", ["ProjectsInParallel", "CEsInParallel"])
@pytest.mark.parametrize("value", [0, -1, "four", 2.5])
def test_a_bad_parallelism_is_refused_naming_the_option(option, value):
    agent, _ = _agent({option: value})
    result = agent.initialize()
    assert not result["OK"] and option in result["Message"] and repr(value) in result["Message"]
