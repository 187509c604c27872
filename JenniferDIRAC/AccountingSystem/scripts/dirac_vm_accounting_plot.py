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


class Options:
    def __init__(self):
        self.type_name = "VirtualMachine"
        self.report = "NormCPUUsed"
        self.grouping = "Site"
        self.weeks = 0.0
        self.days = 0.0
        self.start = ""
        self.end = ""
        self.filters = []
        self.output = ""
        self.list_only = False
        self.width = 0
        self.height = 0

    def setter(self, name, convert=str):
        def set_value(value):
            try:
                setattr(self, name, convert(value))
            except ValueError:
                return DIRAC.S_ERROR(f"--{name}: {value!r} is not a number")
            return DIRAC.S_OK()

        return set_value

    def add_filter(self, value):
        self.filters.append(value)
        return DIRAC.S_OK()

    def set_list(self, _):
        self.list_only = True
        return DIRAC.S_OK()


@Script()
def main():
    options = Options()
    Script.registerSwitch(
        "", "type=", "accounting type (default VirtualMachine)", options.setter("type_name")
    )
    Script.registerSwitch("", "plot=", "plot id or title (default NormCPUUsed)", options.setter("report"))
    Script.registerSwitch("", "group=", "grouping key (default Site)", options.setter("grouping"))
    Script.registerSwitch("", "weeks=", "span: the last N weeks", options.setter("weeks", float))
    Script.registerSwitch(
        "", "days=", "span: the last N days (added to --weeks)", options.setter("days", float)
    )
    Script.registerSwitch("", "start=", "span start, YYYY-MM-DD[ HH:MM] UTC", options.setter("start"))
    Script.registerSwitch("", "end=", "span end, YYYY-MM-DD[ HH:MM] UTC (default now)", options.setter("end"))
    Script.registerSwitch("", "filter=", "Key=value[,value] (repeatable)", options.add_filter)
    Script.registerSwitch(
        "", "output=", "PNG file (default <type>-<plot>-<group>.png)", options.setter("output")
    )
    Script.registerSwitch("", "width=", "plot width in pixels", options.setter("width", int))
    Script.registerSwitch("", "height=", "plot height in pixels", options.setter("height", int))
    Script.registerSwitch("", "list", "list the plots of the type and exit", options.set_list)
    from JenniferDIRAC.WorkloadManagementSystem.Admin import VMAdmin

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
