#!/usr/bin/env python
"""Write one DIRAC accounting plot as a PNG, with its figures in a CSV file beside it.

The plot comes from the Accounting ReportGenerator service (as the WebApp's accounting page
draws it), for the VirtualMachine type of cloud VMs or any other accounting type (Job, Pilot...).

Exit codes: 0 written, 1 usage error (an unknown command-line option too), 2 the ReportGenerator
failed or refused the plot.

Examples:
  $ dirac-vm-accounting-plot --list
  $ dirac-vm-accounting-plot --plot "Cumulative Normalized CPU" --group Site --weeks 40 --output vm-normcpu.png
  $ dirac-vm-accounting-plot --type Job --plot NormCPUUsed --group Site --weeks 40 --output job-normcpu.png
  $ dirac-vm-accounting-plot --plot RunningVMs --group Flavor --days 7 --filter VO=belle --filter Site=CLOUD.A.it --output running.png
"""

import sys

import DIRAC
from DIRAC.Core.Base.Script import Script


@Script()
def main():
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin
    from JenniferDIRAC.WorkloadManagementSystem.Admin.CommandSwitches import Switches, number, whole_number

    switches = Switches(type_name="VirtualMachine", report="NormCPUUsed", grouping="Site", weeks=0.0, days=0.0,
                        start="", end="", filters=[], output="", list_only=False, width=0, height=0)
    switches.value("type", "accounting type (default VirtualMachine)", attribute="type_name")
    switches.value("plot", "plot id or title (default NormCPUUsed)", attribute="report")
    switches.value("group", "grouping key (default Site)", attribute="grouping")
    switches.value("weeks", "span: the last N weeks", number)
    switches.value("days", "span: the last N days (added to --weeks)", number)
    switches.value("start", "span start, YYYY-MM-DD[ HH:MM] UTC")
    switches.value("end", "span end, YYYY-MM-DD[ HH:MM] UTC (default now)")
    switches.repeated("filter", "Key=value[,value] (repeatable)", "filters")
    switches.value("output", "PNG file (default <type>-<plot>-<group>.png)")
    switches.value("width", "plot width in pixels", whole_number)
    switches.value("height", "plot height in pixels", whole_number)
    switches.flag("list", "list the plots of the type and exit", "list_only")
    options = switches.options
    VMAdmin.parse_command_line()  # a usage error exits 1, as every dirac-vm-* command

    import datetime as dt

    from DIRAC import gLogger
    from DIRAC.AccountingSystem.Client.ReportsClient import ReportsClient

    from JenniferDIRAC.AccountingSystem.Client.AccountingPlot import (
        PlotRequest,
        fetch_plot,
        parse_filter,
        time_span,
    )

    client = ReportsClient()
    if options.list_only:
        result = client.listReports(options.type_name)
        if not result["OK"]:
            gLogger.error(f"Cannot list the plots of {options.type_name}", result["Message"])
            DIRAC.exit(2)
        for name in result["Value"]:
            print(name)
        DIRAC.exit(0)

    try:
        start, end = time_span(
            dt.datetime.now(dt.UTC), options.weeks, options.days, options.start, options.end
        )
        conditions = {}
        for text in options.filters:
            key, values = parse_filter(text)
            conditions.setdefault(key, []).extend(values)
    except ValueError as exc:
        gLogger.error(str(exc))
        DIRAC.exit(1)
    output = options.output or f"{options.type_name}-{options.report}-{options.grouping}.png".replace(" ", "")
    request = PlotRequest(
        options.type_name,
        options.report,
        options.grouping,
        start,
        end,
        conditions,
        options.width,
        options.height,
    )
    result = fetch_plot(request, output, client)
    if not result["OK"]:
        gLogger.error(result["Message"])
        DIRAC.exit(2)
    print(f"{result['Value']['png']}\n{result['Value']['csv']}")
    DIRAC.exit(0)


if __name__ == "__main__":
    sys.exit(main())
