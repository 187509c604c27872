"""How DIRAC's ReportGenerator finds the VirtualMachine plotter.

DIRAC's ``MainReporter`` (``PlottersList`` -> ``ObjectLoader.loadObjects``) looks for
``<dir of DIRAC>/<extension>/AccountingSystem/private/Plotters``: it finds the plotter when the
extension is installed beside DIRAC (a wheel, DIRACOS2), not in this editable install; the
extension's ReportGenerator handler finds it in both.
"""

import os
import subprocess
import sys
from pathlib import Path

import DIRAC

import JenniferDIRAC

PROBE = """
from DIRAC.AccountingSystem.private.MainReporter import PlottersList
from JenniferDIRAC.AccountingSystem.private.PlotterDiscovery import PackagePlottersList
for name, plotters in (("dirac", PlottersList()), ("package", PackagePlottersList())):
    cls = plotters.getPlotterClass("VirtualMachine")
    print(name, cls.__module__ if cls else None, plotters.getPlotterClass("Job").__module__)
"""


def probe(env_path: str | None) -> dict[str, tuple[str, str]]:
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = os.pathsep.join([env_path, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return {
        line.split()[0]: tuple(line.split()[1:])
        for line in out.splitlines()
        if line.split()[:1] in (["dirac"], ["package"])
    }


def test_dirac_finds_the_plotter_of_an_extension_installed_beside_it(tmp_path):
    # The layout of a wheel install: both packages in one site-packages directory.
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "DIRAC").symlink_to(Path(DIRAC.__file__).parent)
    (site / "JenniferDIRAC").symlink_to(Path(JenniferDIRAC.__file__).parent)
    found = probe(str(site))
    plotter = "JenniferDIRAC.AccountingSystem.private.Plotters.VirtualMachinePlotter"
    job = "DIRAC.AccountingSystem.private.Plotters.JobPlotter"
    assert found["dirac"] == (plotter, job)
    assert found["package"] == (plotter, job)


def test_editable_install_needs_the_extension_handler():
    found = probe(None)
    assert found["dirac"][0] == "None"  # what DIRAC's own ReportGenerator sees here
    assert found["package"][0] == "JenniferDIRAC.AccountingSystem.private.Plotters.VirtualMachinePlotter"


def test_extension_handler_is_dirac_handler_with_package_plotters():
    from DIRAC.AccountingSystem.Service.ReportGeneratorHandler import ReportGeneratorHandler

    from JenniferDIRAC.AccountingSystem.private.PlotterDiscovery import PackageMainReporter
    from JenniferDIRAC.AccountingSystem.Service.ExtensionReportGeneratorHandler import (
        ExtensionReportGeneratorHandler,
    )

    assert issubclass(ExtensionReportGeneratorHandler, ReportGeneratorHandler)
    reporter = PackageMainReporter(db=None)
    assert reporter.plotterList.getPlotterClass("VirtualMachine").__name__ == "VirtualMachinePlotter"
    assert reporter.list("VirtualMachine")["Value"][0] == "CPU efficiency"
