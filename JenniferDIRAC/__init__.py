"""JenniferDIRAC: pilots in cloud VMs through DIRAC's own SiteDirector and CE machinery."""

__version__ = "0.2.0"


def extension_metadata() -> dict:
    # DIRAC asks for this (once per process) before ObjectLoader generates its search order: the
    # moment to keep that order (extensions before DIRAC) intact, see objectloader_order.
    from JenniferDIRAC.objectloader_order import correct_object_loader

    correct_object_loader(load=True)
    return {
        # A secondary extension: it sits beside a VO's primary extension (BelleDIRAC,
        # GridPP's DIRAC) or plain DIRAC, and must never take over the installation's
        # identity (scripts, web, pilot -e list). Priority 10 places it above DIRAC (0)
        # so that its CloudComputingElement module overrides DIRAC's, and below typical
        # primary VO extensions (100), so a VO extension can still override us.
        "primary_extension": False,
        "priority": 10,
        "setups": {},
    }


# Imported after DIRAC has loaded ObjectLoader: correct it now (a dirac-* console script imports
# this package before DIRAC loads ObjectLoader, and extension_metadata does it then).
from JenniferDIRAC.objectloader_order import correct_object_loader as _correct  # noqa: E402

_correct()
