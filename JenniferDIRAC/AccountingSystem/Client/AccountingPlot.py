"""One accounting plot from DIRAC's ReportGenerator as a PNG file, with its figures as CSV.

Used by ``dirac-vm-accounting-plot``; works for any accounting type that has a plotter (DIRAC's
``Job``, ``Pilot``, ..., the extension's ``VirtualMachine``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from dataclasses import dataclass, field

from DIRAC import S_ERROR, S_OK


@dataclass(frozen=True)
class PlotRequest:
    type_name: str
    report: str  # the plot's id (``NormCPUUsed``) or its title (``Cumulative Normalized CPU``)
    grouping: str
    start: dt.datetime  # UTC, naive (as DIRAC's accounting wants it)
    end: dt.datetime
    conditions: dict[str, list[str]] = field(default_factory=dict)
    width: int = 0
    height: int = 0


def parse_filter(text: str) -> tuple[str, list[str]]:
    """``Key=v1,v2`` -> ("Key", ["v1", "v2"]); ValueError naming the filter if malformed."""
    key, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not items:
        raise ValueError(f"filter {text!r}: expected Key=value[,value...]")
    return key.strip(), items


def parse_day(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM`` (UTC); ValueError if neither."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or 'YYYY-MM-DD HH:MM')")


def time_span(
    now: dt.datetime, weeks: float = 0, days: float = 0, start: str = "", end: str = ""
) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) in naive UTC: an explicit ``start``/``end``, else the last weeks + days to ``now``."""
    stop = parse_day(end) if end else now.replace(tzinfo=None, microsecond=0)
    if start:
        begin = parse_day(start)
    else:
        length = dt.timedelta(weeks=weeks, days=days)
        if length <= dt.timedelta(0):
            raise ValueError("give a time span: --weeks, --days or --start")
        begin = stop - length
    if begin >= stop:
        raise ValueError(f"the plot's start {begin} is not before its end {stop}")
    return begin, stop


def csv_rows(report_data: dict) -> tuple[str, list[str], list[list]]:
    """Comment line (unit, granularity), header and rows of a report's figures: one row per bucket (``bucket_start_utc``, epoch,
    one column per group), or one row per group for pie plots; in the plot's unit."""
    data = report_data.get("graphDataDict", report_data.get("data", {}))
    unit = report_data.get("unit", "")
    groups = sorted(data)
    if groups and all(isinstance(data[g], dict) for g in groups):
        times = sorted({int(t) for g in groups for t in data[g]})
        header = ["bucket_start_utc", "epoch", *groups]
        rows = [
            [dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M"), t]
            + [_number(data[g].get(t, data[g].get(str(t), 0))) for g in groups]
            for t in times
        ]
        return f"# unit: {unit}; granularity: {report_data.get('granularity', '')} s", header, rows
    return f"# unit: {unit}", ["group", "value"], [[g, _number(data[g])] for g in groups]


def _number(value):
    return 0 if value is None else float(value)


def write_csv(report_data: dict, path: str) -> None:
    comment, header, rows = csv_rows(report_data)
    with open(path, "w", newline="") as out:
        out.write(comment + "\n")
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def fetch_plot(request: PlotRequest, png_path: str, client=None):
    """Ask the ReportGenerator for the plot, write it to ``png_path`` and its figures to the
    ``.csv`` beside it. S_OK({"png": path, "csv": path, "report": report data})."""
    if client is None:
        from DIRAC.AccountingSystem.Client.ReportsClient import ReportsClient

        client = ReportsClient()
    extra = {"retrieveReportData": True}
    if request.width:
        extra["width"] = request.width
    if request.height:
        extra["height"] = request.height
    result = client.generatePlot(
        request.type_name,
        request.report,
        request.start,
        request.end,
        dict(request.conditions),
        request.grouping,
        extra,
    )
    if not result["OK"]:
        return S_ERROR(f"{request.type_name} plot {request.report!r}: {result['Message']}")
    plot = result["Value"]
    directory = os.path.dirname(os.path.abspath(png_path))
    os.makedirs(directory, exist_ok=True)
    received = client.getPlotToDirectory(plot["plot"], directory)
    if not received["OK"]:
        return S_ERROR(f"cannot download plot {plot['plot']}: {received['Message']}")
    os.replace(os.path.join(directory, plot["plot"]), png_path)
    csv_path = os.path.splitext(png_path)[0] + ".csv"
    report = plot.get("reportData", {})
    write_csv(report, csv_path)
    return S_OK({"png": png_path, "csv": csv_path, "report": report})
