"""Keep DIRAC's ObjectLoader searching the extensions before DIRAC (DIRAC 9.1 loses that order).

``ObjectLoader.__generateRootModules(baseModules)`` appends to and reverses the list it is given,
which is the instance's saved base list. ``ObjectLoader()`` therefore leaves the base as
``['', 'JenniferDIRAC', 'DIRAC']``, and ``reloadRootModules()`` (``LocalConfiguration.enableCS``,
run by every ``Script.parseCommandLine``) rebuilds the search order from it as
``['', 'DIRAC', 'JenniferDIRAC', '']``: DIRAC's modules then win over every extension's, and
``CEType = Cloud`` builds DIRAC's stock CloudComputingElement, whose VMs carry no owner metadata.

The fix in DIRAC is to generate from a copy of the list. Until DIRAC has it, the same correction
is applied here, from ``extension_metadata()``: DIRAC's ``extensionsByPriority`` (cached: it runs
once per process) calls it before any root modules can be generated, either from the ``@Script``
wrapper of a ``dirac-*`` command or from ObjectLoader's first generation itself. The correction
is then in place before the first reload in every process that has the extension installed. It
is idempotent and harmless once DIRAC is fixed.
"""

from __future__ import annotations

import importlib
import sys

_OBJECT_LOADER_MODULE = "DIRAC.Core.Utilities.ObjectLoader"
_GENERATE = "_ObjectLoader__generateRootModules"
_BASE = "_ObjectLoader__baseModules"
_ROOTS = "_ObjectLoader__rootModules"
_CORRECTED = "_jenniferdirac_root_order_corrected"
#: Modules this extension overrides: DIRAC's version being loaded means the order is wrong.
OVERRIDDEN_MODULES = ("Resources.Computing.CloudComputingElement",)
STOCK_CLASS_WARNING = (
    "DIRAC's stock {name} was loaded although JenniferDIRAC is installed: ObjectLoader searches DIRAC "
    "before the extensions (search order {order}); cloud CEs built now create VMs without "
    "JenniferDIRAC's owner metadata"
)


def _warn(message: str) -> None:
    # The logger may itself be initialising (it creates the first ObjectLoader): never fail here.
    try:
        from DIRAC import gLogger

        gLogger.warn(message)
    except Exception:  # noqa: BLE001 - a warning must not break DIRAC's start-up
        print(f"WARNING: {message}", file=sys.stderr)


def _pristine_base(base_modules: list[str]) -> list[str]:
    """The base list as DIRAC meant it, from one that earlier generations may have mutated
    (extension names and '' appended, then reversed)."""
    from DIRAC.Core.Utilities.Extensions import extensionsByPriority

    extensions = set(extensionsByPriority())
    return [module for module in base_modules if module and module not in extensions] or ["DIRAC"]


def correct_object_loader(load: bool = False) -> bool:
    """Make ObjectLoader generate its root modules from a copy of its base list, and warn loudly
    whenever it still loads DIRAC's version of a module this extension overrides.

    `load`: import ObjectLoader's module if DIRAC has not yet (only once DIRAC itself is imported).
    True once the correction is in place; False while ObjectLoader is not loaded (nothing to
    correct yet) or if DIRAC's internals changed so that it cannot be applied (warned)."""
    module = sys.modules.get(_OBJECT_LOADER_MODULE)
    if module is None and load and "DIRAC" in sys.modules:
        try:
            module = importlib.import_module(_OBJECT_LOADER_MODULE)
        except ImportError:  # DIRAC is still being imported: its ObjectLoader call comes later
            return False
    loader_class = getattr(module, "ObjectLoader", None)
    if loader_class is None:
        return False
    if getattr(loader_class, _CORRECTED, False):
        return True
    generate = getattr(loader_class, _GENERATE, None)
    load_object = getattr(loader_class, "loadObject", None)
    if generate is None or load_object is None:
        _warn(
            "JenniferDIRAC cannot correct DIRAC's ObjectLoader (its internals changed): check that "
            "CEType = Cloud builds JenniferDIRAC's CloudComputingElement"
        )
        return False

    def generate_from_copy(self, base_modules):
        base = _pristine_base(base_modules)
        setattr(self, _BASE, base)  # the next reload starts from the same pristine list
        return generate(self, list(base))

    def load_object_checked(self, importString, objName="", hideExceptions=False):
        result = load_object(self, importString, objName, hideExceptions)
        if result["OK"] and importString in OVERRIDDEN_MODULES:
            origin = getattr(result["Value"], "__module__", "") or ""
            if origin.startswith("DIRAC."):
                _warn(STOCK_CLASS_WARNING.format(name=importString, order=getattr(self, _ROOTS, "?")))
        return result

    setattr(loader_class, _GENERATE, generate_from_copy)
    loader_class.loadObject = load_object_checked
    setattr(loader_class, _CORRECTED, True)
    return True
