"""DIRAC's Accounting ReportGenerator, finding the plotters of extensions installed in editable mode.

Behaves exactly as ``DIRAC.AccountingSystem.Service.ReportGeneratorHandler`` except that the
plotters come from ``PlotterDiscovery.find_plotters`` (each extension's package) instead of
DIRAC's file-system search beside DIRAC (which misses ``pip install -e`` extensions).
A wheel or DIRACOS2 installation does not need it. To use it::

    Systems/Accounting/<instance>/Services/ReportGenerator/HandlerPath =
        JenniferDIRAC/AccountingSystem/Service/ExtensionReportGeneratorHandler.py
"""

from DIRAC.AccountingSystem.Service.ReportGeneratorHandler import ReportGeneratorHandler

from JenniferDIRAC.AccountingSystem.private.PlotterDiscovery import PackageMainReporter


class ExtensionReportGeneratorHandler(ReportGeneratorHandler):
    # DIRAC's handler keeps its database and request check in name-mangled attributes.
    def _reporter(self):
        return PackageMainReporter(self._ReportGeneratorHandler__acDB)

    def _checked(self, reportRequest):
        return self._ReportGeneratorHandler__checkPlotRequest(reportRequest)

    types_generatePlot = [dict]

    def export_generatePlot(self, reportRequest):
        result = self._checked(reportRequest)
        if not result["OK"]:
            return result
        reportRequest["generatePlot"] = True
        return self._reporter().generate(reportRequest, self.getRemoteCredentials())

    types_getReport = [dict]

    def export_getReport(self, reportRequest):
        result = self._checked(reportRequest)
        if not result["OK"]:
            return result
        reportRequest["generatePlot"] = False
        return self._reporter().generate(reportRequest, self.getRemoteCredentials())

    types_listReports = [str]

    def export_listReports(self, typeName):
        return self._reporter().list(typeName)
