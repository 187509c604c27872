"""The VMDirector world fixture (director_kit.py)."""

from director_kit import world  # noqa: F401
