"""Which cloud CEs the VMDirector serves, each with its parameters per queue."""

from __future__ import annotations

from DIRAC import S_OK, gConfig
from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues

from JenniferDIRAC.WorkloadManagementSystem.Configuration.CEQueues import parameters_by_ce


def cloud_ces(sites: list[str], ce_names: list[str], ce_types: list[str], vos: list[str]):
    """S_OK({CE name: CEParameters}) of the CEs of `ce_types` under /Resources/Sites, limited to
    `sites`, `ce_names` and the CEs serving one of `vos` (empty: no limit)."""
    if not gConfig.getSections("/Resources/Sites")["OK"]:
        return S_OK({})  # no site configured at all
    result = getQueues(siteList=sites or None, ceList=ce_names or None, ceTypeList=ce_types)
    if not result["OK"]:
        return result
    result = parameters_by_ce(result["Value"])
    if not result["OK"]:
        return result
    return S_OK(
        {
            ce: params
            for ce, params in result["Value"].items()
            if not vos or serves_vo(params.with_first_queue, vos)
        }
    )


def serves_vo(params: dict, vos: list[str]) -> bool:
    """A CE serves the VOs of its VO (or Community) option; one without it serves every VO."""
    declared = params.get("VO") or params.get("Community") or ""
    declared = [
        v.strip() for v in (declared.split(",") if isinstance(declared, str) else declared) if v.strip()
    ]
    return not declared or any(vo in vos for vo in declared)
