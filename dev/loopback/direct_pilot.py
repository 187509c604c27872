"""Prepare one pilot the way the SiteDirector does, without a CE: for testing the pilot side alone.

    DIRAC_ROOT_PATH=<server root> python -m dev.loopback.direct_pilot --ref REF --stamp STAMP \
        --ce CE --queue QUEUE --out wrapper.sh [--option=--MaxCycles=1 ...]

With the server's host credentials it downloads the generic pilot proxy from the ProxyManager,
records the pilot in PilotAgentsDB (status Submitted, with its stamp) and writes DIRAC's own
pilot wrapper (``PilotWrapper.pilotWrapperScript``) with the proxy bundled and the pilot files
location of ``/Operations/<VO>/Pilot/pilotFileServer``. Run the wrapper with ``PILOT_UUID=REF``
and ``DIRAC_PILOT_STAMP=STAMP``, as a cloud VM does.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", required=True)
    parser.add_argument("--stamp", required=True)
    parser.add_argument("--ce", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--option", action="append", default=[], help="extra dirac-pilot.py option")
    args = parser.parse_args(argv)

    import DIRAC

    DIRAC.initialize()
    from DIRAC import gConfig, gLogger
    from DIRAC.ConfigurationSystem.Client.Helpers.Operations import Operations
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getCESiteMapping
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.WorkloadManagementSystem.Client import PilotStatus
    from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient
    from DIRAC.WorkloadManagementSystem.private.ConfigHelper import findGenericPilotCredentials
    from DIRAC.WorkloadManagementSystem.Utilities.PilotWrapper import (
        _writePilotWrapperFile,
        getPilotFilesCompressedEncodedDict,
        pilotWrapperScript,
    )

    def fail(what: str, result: dict) -> int:
        gLogger.error(what, result["Message"])
        return 1

    vo = gConfig.getValue("/DIRAC/VirtualOrganization")
    ops = Operations(vo=vo)
    result = getCESiteMapping(args.ce)
    if not result["OK"] or args.ce not in result["Value"]:
        gLogger.error("CE not in /Resources/Sites", args.ce)
        return 1
    site = result["Value"][args.ce]
    ce_type = gConfig.getValue(
        f"/Resources/Sites/{site.split('.')[0]}/{site}/CEs/{args.ce}/CEType", "Unknown"
    )

    result = findGenericPilotCredentials(vo=vo)
    if not result["OK"]:
        return fail("No generic pilot credentials", result)
    pilot_dn = result["Value"][0]
    result = gProxyManager.getPilotProxyFromDIRACGroup(
        pilot_dn, ops.getValue("Pilot/GenericPilotGroup"), 86400
    )
    if not result["OK"]:
        return fail("Cannot get the pilot proxy", result)
    proxy = result["Value"]

    pilots = PilotManagerClient()
    result = pilots.addPilotReferences([args.ref], vo, ce_type, {args.ref: args.stamp})
    if not result["OK"]:
        return fail("Cannot add the pilot reference", result)
    result = pilots.setPilotStatus(
        args.ref, PilotStatus.SUBMITTED, args.ce, "Submitted directly for a test", site, args.queue
    )
    if not result["OK"]:
        return fail("Cannot set the pilot status", result)

    options = [
        f"--preinstalledEnv={ops.getValue('Pilot/PreinstalledEnv', '')}",
        f"-N {args.ce}",
        f"-Q {args.queue}",
        f"-n {site}",
        f"--wnVO={vo}",
        *args.option,
    ]
    wrapper = pilotWrapperScript(
        pilotFilesCompressedEncodedDict=getPilotFilesCompressedEncodedDict([], proxy),
        pilotOptions=" ".join(options),
        location=ops.getValue("Pilot/pilotFileServer", ""),
    )
    path = _writePilotWrapperFile(
        workingDirectory=str(__import__("pathlib").Path(args.out).parent), localPilot=wrapper
    )
    __import__("os").replace(path, args.out)
    gLogger.notice("Pilot wrapper written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
