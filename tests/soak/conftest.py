"""The soak reuses the integration tests' world (LocalCloud, MariaDB, a real dirac-agent)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))


def pytest_addoption(parser):
    parser.addoption("--soak-cycles", type=int, default=None,
                     help="fault cycles of tests/soak (default: JDIRAC_SOAK_CYCLES, else 4)")
