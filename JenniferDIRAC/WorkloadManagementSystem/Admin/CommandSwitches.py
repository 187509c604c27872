"""The command-line switches of the dirac-vm-* commands, declared as data.

Each switch sets one value of the command's ``options`` (DIRAC's ``Script.registerSwitch``
with a callback); a value its conversion refuses (ValueError) is DIRAC's usage error, naming
the switch. Declare the switches, then parse with ``VMAdmin.parse_command_line()``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from DIRAC import S_ERROR, S_OK


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [value.strip() for value in text.split(",") if value.strip()]


def upper_comma_list(text: str) -> list[str]:
    """A comma-separated list of states, in capitals."""
    return [value.upper() for value in comma_list(text)]


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def positive_whole_number(text: str) -> int:
    value = whole_number(text)
    if value <= 0:
        raise ValueError(f"must be positive, not {value}")
    return value


class Switches:
    """A command's switches; ``options`` holds their values (the `defaults` until given)."""

    def __init__(self, **defaults):
        self.options = SimpleNamespace(**defaults)

    def value(
        self, switch: str, help_text: str, convert: Callable[[str], object] = str, attribute: str = ""
    ) -> None:
        """``--<switch>=<value>`` sets ``options.<attribute>`` (default: the switch's name, ``-``
        as ``_``) to ``convert(value)``."""
        from DIRAC.Core.Base.Script import Script

        attribute = attribute or switch.replace("-", "_")

        def set_value(text: str):
            try:
                setattr(self.options, attribute, convert(text))
            except ValueError as exc:
                return S_ERROR(f"--{switch}: {exc}")
            return S_OK()

        Script.registerSwitch("", f"{switch}=", help_text, set_value)

    def repeated(self, switch: str, help_text: str, attribute: str = "") -> None:
        """``--<switch>=<value>``, as often as wanted: each value appended to ``options.<attribute>``."""
        attribute = attribute or switch.replace("-", "_")
        self.value(switch, help_text, lambda text: [*getattr(self.options, attribute), text], attribute)

    def flag(self, switch: str, help_text: str, attribute: str = "", value: object = True) -> None:
        """``--<switch>`` sets ``options.<attribute>`` (default: the switch's name) to `value`."""
        from DIRAC.Core.Base.Script import Script

        attribute = attribute or switch.replace("-", "_")

        def set_flag(_):
            setattr(self.options, attribute, value)
            return S_OK()

        Script.registerSwitch("", switch, help_text, set_flag)
