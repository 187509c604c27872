"""The accounting plots of the fleet page: CS option ``Plots``, each ``Type/Report/Grouping/Weeks``
(e.g. ``VirtualMachine/NormCPUUsed/Site/40``), made by the ReportGenerator through
AccountingSystem/Client/AccountingPlot.py (what dirac-vm-accounting-plot uses)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from .app import Plot


def parse_plot(text: str) -> Plot:
    """A Plot from ``Type/Report/Grouping/Weeks``; ValueError naming the option if malformed."""
    parts = [p.strip() for p in text.split("/")]
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"option Plots: {text!r} is not Type/Report/Grouping/Weeks")
    type_name, report, grouping, weeks = parts
    try:
        span = float(weeks)
    except ValueError:
        raise ValueError(f"option Plots: {text!r}: {weeks!r} is not a number of weeks") from None
    if span <= 0:
        raise ValueError(f"option Plots: {text!r}: the number of weeks must be positive")
    name = f"{type_name}-{report}-{grouping}-{weeks}w".replace(" ", "")

    def png() -> bytes:
        from JenniferDIRAC.AccountingSystem.Client.AccountingPlot import PlotRequest, fetch_plot

        end = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        request = PlotRequest(type_name, report, grouping, end - dt.timedelta(weeks=span), end)
        with tempfile.TemporaryDirectory() as directory:
            result = fetch_plot(request, str(Path(directory) / "plot.png"))
            if not result["OK"]:
                raise RuntimeError(result["Message"])
            return Path(result["Value"]["png"]).read_bytes()

    return Plot(name, f"{report} by {grouping}, {weeks} weeks ({type_name})", png)
