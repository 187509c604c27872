"""Accounting plotters of DIRAC and every installed extension, found through their packages.

DIRAC's ``MainReporter`` finds plotters with ``ObjectLoader.loadObjects``, which looks for
``<site-packages>/<extension>/AccountingSystem/private/Plotters`` beside DIRAC's own files:
that finds an extension installed from a wheel, not one installed in editable mode
(``pip install -e``: its files are elsewhere; DIRAC's docstring says so). This looks in each
extension's imported package instead, highest priority first, so both layouts work.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from DIRAC import gLogger
from DIRAC.AccountingSystem.private.MainReporter import MainReporter
from DIRAC.AccountingSystem.private.Plotters.BaseReporter import BaseReporter
from DIRAC.Core.Utilities.Extensions import extensionsByPriority

PLOTTER_MODULE = re.compile(r"^\w*[a-z1-9]Plotter$")


def find_plotters(extensions: list[str] | None = None) -> dict[str, type[BaseReporter]]:
    """{accounting type name: plotter class}; a higher-priority extension's plotter wins."""
    plotters: dict[str, type[BaseReporter]] = {}
    for extension in extensions or extensionsByPriority():
        try:
            package = importlib.import_module(f"{extension}.AccountingSystem.private.Plotters")
        except ImportError:
            continue
        for module_info in pkgutil.iter_modules(package.__path__):
            name = module_info.name
            if not PLOTTER_MODULE.match(name) or name[: -len("Plotter")] in plotters:
                continue
            try:
                module = importlib.import_module(f"{package.__name__}.{name}")
            except Exception as exc:  # one broken plotter must not hide the others
                gLogger.error("Cannot import accounting plotter", f"{package.__name__}.{name}: {exc!r}")
                continue
            cls = getattr(module, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseReporter) and cls is not BaseReporter:
                plotters[name[: -len("Plotter")]] = cls
    return plotters


class PackagePlottersList:
    """Drop-in for DIRAC's ``PlottersList`` (``getPlotterClass``)."""

    def __init__(self):
        self._plotters = find_plotters()

    def getPlotterClass(self, typeName):
        return self._plotters.get(typeName)


class PackageMainReporter(MainReporter):
    """DIRAC's ``MainReporter`` with plotters found by ``find_plotters``."""

    def __init__(self, db):
        super().__init__(db)
        self.plotterList = PackagePlottersList()
