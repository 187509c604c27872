"""The soak reuses the integration tests' world (LocalCloud, MariaDB, a real dirac-agent) and
the CE tests' way of driving DIRAC's SiteDirector."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
sys.path.insert(0, str(Path(__file__).parent.parent / "ce"))  # DIRAC's SiteDirector driven as tests/ce does


def pytest_addoption(parser):
    parser.addoption("--soak-cycles", type=int, default=None,
                     help="fault cycles of tests/soak (default: JDIRAC_SOAK_CYCLES, else 4)")
