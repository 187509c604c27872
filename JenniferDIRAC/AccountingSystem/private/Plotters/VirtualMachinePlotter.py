"""Plots of the ``VirtualMachine`` accounting type for DIRAC's Accounting ReportGenerator.

DIRAC's ``MainReporter`` takes every ``<Type>Plotter`` class in
``<extension>/AccountingSystem/private/Plotters/`` as the plotter of ``<Type>``; each
``_report<Name>`` method computes the figures of one plot (``_report<Name>Name`` is the title
the WebApp and ``dirac-vm-accounting-plot`` list) and ``_plot<Name>`` draws them.

Any key of the type can be the grouping or a filter: Site, CE, VO, Flavor, Profile,
EndStatus, BenchmarkSource. A record spans the VM's life; DIRAC spreads its values over the
buckets of that span (as it does for jobs), so counts per bucket can be fractions while their
sum over the plot's span is exact.
"""

from DIRAC import S_OK
from DIRAC.AccountingSystem.private.Plotters.BaseReporter import BaseReporter

from JenniferDIRAC.AccountingSystem.Client.Types.VirtualMachine import VirtualMachine

#: End statuses of VMs that did no useful work.
UNPRODUCTIVE = ("Fizzled", "NeverStarted")


class VirtualMachinePlotter(BaseReporter):
    _typeName = "VirtualMachine"
    _typeKeyFields = [field for field, _ in VirtualMachine().definitionKeyFields]

    _UNITS = {**BaseReporter._UNITS, "vms": (("VMs", 1, 1000), ("kVMs", 10**3, 1000), ("MVMs", 10**6, 1))}
    _RATE_UNITS = {
        **BaseReporter._RATE_UNITS,
        "vms": (("VMs", 1, 1000), ("kVMs", 10**3, 1000), ("MVMs", 10**6, 1)),
    }

    # --- shared shapes ---------------------------------------------------------------------
    def _bucketed(self, reportRequest, field, condDict=None):
        """{group: {bucket start: sum of ``field``}}, granularity."""
        selectFields = (
            self._getSelectStringForGrouping(reportRequest["groupingFields"]) + ", %s, %s, SUM(%s)",
            reportRequest["groupingFields"][1] + ["startTime", "bucketLength", field],
        )
        result = self._getTimedData(
            reportRequest["startTime"],
            reportRequest["endTime"],
            selectFields,
            reportRequest["condDict"] if condDict is None else condDict,
            reportRequest["groupingFields"],
            {},
        )
        if not result["OK"]:
            return result
        dataDict, granularity = result["Value"]
        self.stripDataField(dataDict, 0)
        dataDict = self._fillWithZero(
            granularity, reportRequest["startTime"], reportRequest["endTime"], dataDict
        )
        return S_OK((dataDict, granularity))

    def _cumulative(self, reportRequest, field, unit, condDict=None):
        result = self._bucketed(reportRequest, field, condDict)
        if not result["OK"]:
            return result
        dataDict, granularity = result["Value"]
        dataDict = self._accumulate(
            granularity, reportRequest["startTime"], reportRequest["endTime"], dataDict
        )
        base, graph, _, unitName = self._findSuitableUnit(
            dataDict, self._getAccumulationMaxValue(dataDict), unit
        )
        return S_OK({"data": base, "graphDataDict": graph, "granularity": granularity, "unit": unitName})

    def _rate(self, reportRequest, field, unit, condDict=None):
        """Per second of the bucket (time fields divided by the bucket length give a count)."""
        result = self._bucketed(reportRequest, field, condDict)
        if not result["OK"]:
            return result
        dataDict, granularity = result["Value"]
        dataDict, _ = self._divideByFactor(dataDict, granularity)
        base, graph, _, unitName = self._findSuitableRateUnit(
            dataDict, self._getAccumulationMaxValue(dataDict), unit
        )
        return S_OK({"data": base, "graphDataDict": graph, "granularity": granularity, "unit": unitName})

    def _counts(self, reportRequest, field, condDict=None):
        result = self._bucketed(reportRequest, field, condDict)
        if not result["OK"]:
            return result
        dataDict, granularity = result["Value"]
        base, graph, _, unitName = self._findSuitableUnit(
            dataDict, self._getAccumulationMaxValue(dataDict), "vms"
        )
        return S_OK({"data": base, "graphDataDict": graph, "granularity": granularity, "unit": unitName})

    def _metadata(self, reportRequest, plotInfo, title):
        return {
            "title": f"{title} by {reportRequest['grouping']}",
            "starttime": reportRequest["startTime"],
            "endtime": reportRequest["endTime"],
            "span": plotInfo["granularity"],
            "ylabel": plotInfo["unit"],
            "sort_labels": "max_value",
        }

    def _unproductive(self, reportRequest):
        """The request's conditions restricted to the VMs that did no work."""
        condDict = dict(reportRequest["condDict"])
        wanted = condDict.get("EndStatus")
        if wanted:
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            condDict["EndStatus"] = [status for status in wanted if status in UNPRODUCTIVE] or ["-none-"]
        else:
            condDict["EndStatus"] = list(UNPRODUCTIVE)
        return condDict

    # --- CPU (what the VMs' kernels counted) -----------------------------------------------
    _reportNormCPUUsedName = "Cumulative Normalized CPU"

    def _reportNormCPUUsed(self, reportRequest):
        return self._cumulative(reportRequest, "NormCPUTime", "cpupower")

    def _plotNormCPUUsed(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Normalized CPU used")
        return self._generateCumulativePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportNormCPUUsageName = "Normalized CPU power"

    def _reportNormCPUUsage(self, reportRequest):
        return self._rate(reportRequest, "NormCPUTime", "cpupower")

    def _plotNormCPUUsage(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Normalized CPU usage")
        return self._generateStackedLinePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportCPUUsedName = "Cumulative CPU time"

    def _reportCPUUsed(self, reportRequest):
        return self._cumulative(reportRequest, "CPUTime", "time")

    def _plotCPUUsed(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "CPU used")
        return self._generateCumulativePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportCPUEfficiencyName = "CPU efficiency"

    def _reportCPUEfficiency(self, reportRequest):
        selectFields = (
            self._getSelectStringForGrouping(reportRequest["groupingFields"]) + ", %s, %s, SUM(%s), SUM(%s)",
            reportRequest["groupingFields"][1] + ["startTime", "bucketLength", "CPUTime", "CoreWallTime"],
        )
        result = self._getTimedData(
            reportRequest["startTime"],
            reportRequest["endTime"],
            selectFields,
            reportRequest["condDict"],
            reportRequest["groupingFields"],
            {
                "checkNone": True,
                "convertToGranularity": "sum",
                "calculateProportionalGauges": False,
                "consolidationFunction": self._efficiencyConsolidation,
            },
        )
        if not result["OK"]:
            return result
        dataDict, granularity = result["Value"]
        self.stripDataField(dataDict, 0)
        return S_OK({"data": dataDict, "granularity": granularity})

    def _plotCPUEfficiency(self, reportRequest, plotInfo, filename):
        metadata = {
            "title": f"VM CPU efficiency by {reportRequest['grouping']}",
            "starttime": reportRequest["startTime"],
            "endtime": reportRequest["endTime"],
            "span": plotInfo["granularity"],
        }
        return self._generateQualityPlot(filename, plotInfo["data"], metadata)

    # --- VM time (what the cloud provided) -------------------------------------------------
    _reportNormVMTimeName = "Cumulative Normalized VM time"

    def _reportNormVMTime(self, reportRequest):
        return self._cumulative(reportRequest, "NormCoreWallTime", "cpupower")

    def _plotNormVMTime(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Normalized VM time (HS06 x core wall time)")
        return self._generateCumulativePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportWallTimeName = "Cumulative VM wall time"

    def _reportWallTime(self, reportRequest):
        return self._cumulative(reportRequest, "WallTime", "time")

    def _plotWallTime(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "VM wall time")
        return self._generateCumulativePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportCoreWallTimeName = "Cumulative core wall time"

    def _reportCoreWallTime(self, reportRequest):
        return self._cumulative(reportRequest, "CoreWallTime", "time")

    def _plotCoreWallTime(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Core wall time")
        return self._generateCumulativePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportRunningVMsName = "Running VMs"

    def _reportRunningVMs(self, reportRequest):
        # Wall seconds in a bucket / bucket length = VMs running on average during it.
        return self._rate(reportRequest, "WallTime", "vms")

    def _plotRunningVMs(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Running VMs")
        return self._generateStackedLinePlot(filename, plotInfo["graphDataDict"], metadata)

    # --- VM counts -------------------------------------------------------------------------
    _reportNumberOfVMsName = "Finished VMs"

    def _reportNumberOfVMs(self, reportRequest):
        return self._counts(reportRequest, "VMs")

    def _plotNumberOfVMs(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Finished VMs")
        return self._generateTimedStackedBarPlot(filename, plotInfo["graphDataDict"], metadata)

    _reportCumulativeNumberOfVMsName = "Cumulative finished VMs"

    def _reportCumulativeNumberOfVMs(self, reportRequest):
        return self._cumulative(reportRequest, "VMs", "vms")

    def _plotCumulativeNumberOfVMs(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Cumulative finished VMs")
        return self._generateCumulativePlot(filename, plotInfo["graphDataDict"], metadata)

    _reportUnproductiveVMsName = "Fizzled and never started VMs"

    def _reportUnproductiveVMs(self, reportRequest):
        return self._counts(reportRequest, "VMs", self._unproductive(reportRequest))

    def _plotUnproductiveVMs(self, reportRequest, plotInfo, filename):
        metadata = self._metadata(reportRequest, plotInfo, "Fizzled and never started VMs")
        return self._generateTimedStackedBarPlot(filename, plotInfo["graphDataDict"], metadata)

    _reportTotalVMsName = "Pie plot of finished VMs"

    def _reportTotalVMs(self, reportRequest):
        selectFields = (
            self._getSelectStringForGrouping(reportRequest["groupingFields"]) + ", SUM(%s)",
            reportRequest["groupingFields"][1] + ["VMs"],
        )
        result = self._getSummaryData(
            reportRequest["startTime"],
            reportRequest["endTime"],
            selectFields,
            reportRequest["condDict"],
            reportRequest["groupingFields"],
            {},
        )
        if not result["OK"]:
            return result
        return S_OK({"data": result["Value"]})

    def _plotTotalVMs(self, reportRequest, plotInfo, filename):
        metadata = {
            "title": f"Finished VMs by {reportRequest['grouping']}",
            "ylabel": "VMs",
            "starttime": reportRequest["startTime"],
            "endtime": reportRequest["endTime"],
        }
        return self._generatePiePlot(filename, plotInfo["data"], metadata)
