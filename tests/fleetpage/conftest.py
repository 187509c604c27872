"""The VMDirector world fixture (tests/monitoring/director_kit.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "monitoring"))

from director_kit import world  # noqa: F401
