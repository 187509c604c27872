"""JenniferDIRAC is discovered by DIRAC's own extension machinery."""

from importlib.metadata import entry_points

import JenniferDIRAC


def test_entry_point_in_dirac_group():
    eps = entry_points(group="dirac")
    assert "JenniferDIRAC:extension_metadata" in {ep.value for ep in eps}


def test_extension_metadata_is_secondary_and_above_dirac():
    metadata = JenniferDIRAC.extension_metadata()
    assert metadata["primary_extension"] is False
    assert metadata["priority"] > 0


def test_extensions_by_priority_lists_us_before_dirac():
    from DIRAC.Core.Utilities.Extensions import extensionsByPriority

    extensions = extensionsByPriority()
    assert "JenniferDIRAC" in extensions
    assert extensions.index("JenniferDIRAC") < extensions.index("DIRAC")


def test_cs_extensions_include_us():
    from DIRAC.ConfigurationSystem.Client.Helpers.CSGlobals import getCSExtensions

    # DIRAC strips the "DIRAC" suffix: this is what pilots receive as "-e" unless
    # /Operations/<VO>/Pilot/Extensions is set (see README).
    assert "Jennifer" in getCSExtensions()


def test_config_template_is_package_data():
    from importlib.resources import files

    template = files("JenniferDIRAC.WorkloadManagementSystem").joinpath("ConfigTemplate.cfg")
    assert template.is_file()
    assert "VMDirector" in template.read_text()
