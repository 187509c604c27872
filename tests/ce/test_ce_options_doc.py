"""docs/CE-OPTIONS.md, the CE's option reference, names every option the CE reads."""

import re
from pathlib import Path

from JenniferDIRAC.Resources.Cloud.ceconfig import _Parser
from JenniferDIRAC.Resources.Cloud.optionnames import DIRAC_CE_OPTIONS

from test_ceconfig import DIRAC_EXAMPLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "CE-OPTIONS.md"
#: read beside the parser: the VM endpoint (VMEndpointServer.settings) and the lost-pilot grace
READ_BY_THE_CE_ELSEWHERE = {"Context_EndpointURL", "Context_TokenSecretFile", "LostPilotGrace"}


def documented() -> set[str]:
    return set(re.findall(r"`([A-Za-z][A-Za-z0-9_]*)`", DOC.read_text()))


def test_every_option_the_ce_reads_is_documented():
    parser = _Parser("ce", DIRAC_EXAMPLE)
    parser.build(None, "")
    # DIRAC's own options (Site, Community, ...) are DIRAC's to document
    read = {option for option in parser.consulted - DIRAC_CE_OPTIONS if not option.startswith("Driver_")}
    read |= READ_BY_THE_CE_ELSEWHERE
    assert "Instance_Image" in read and "ListingCacheSeconds" in read  # the parser was asked
    assert sorted(read - documented()) == []


def test_the_reference_is_linked_from_the_ce_and_the_readme():
    from JenniferDIRAC.Resources.Computing import CloudComputingElement

    assert "docs/CE-OPTIONS.md" in CloudComputingElement.__doc__
    assert "](docs/CE-OPTIONS.md)" in (DOC.parents[1] / "README.md").read_text()
