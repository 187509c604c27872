"""Unknown configuration options: the closest known name, so that a misspelling is caught.

Used wherever JenniferDIRAC reads a CS section whose options it knows: CE parameters
(ceconfig, where an unknown option is a warning, because DIRAC's own options share the section)
and contextualization profiles (where it is an error).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_option(option: str, known: Iterable[str]) -> str | None:
    """The known option `option` most probably meant (case-insensitive), or None."""
    by_folded = {name.casefold(): name for name in known}
    match = difflib.get_close_matches(option.casefold(), list(by_folded), n=1, cutoff=0.75)
    return by_folded[match[0]] if match else None


def unknown_option_problem(option: str, known: Iterable[str], what: str = "option") -> str:
    """``unknown <what>, did you mean X?`` (or just ``unknown <what>``)."""
    suggestion = closest_option(option, known)
    return f"unknown {what}" + (f", did you mean {suggestion}?" if suggestion else "")


#: DIRAC's own options that reach a CE's parameters: CE and queue options of the CS
#: (ComputingElement, SiteDirector, getQueuesResolved, the pilot and job matching), and what
#: DIRAC adds itself. Never reported as unknown.
DIRAC_CE_OPTIONS = frozenset(
    {
        # added by DIRAC (getQueues / getQueuesResolved, the SiteDirector, ComputingElement)
        "CEType", "Site", "GridCE", "Queue", "QueueName", "CEName", "Community", "VO",
        "VirtualOrganization", "GridEnv", "Setup", "CPUTime", "JobExecDir", "OwnerDN", "OwnerGroup",
        "DIRACVersion", "ReleaseVersion", "ReleaseProject", "ProcessorsInUse",
        # CE and queue options of DIRAC's CS (Resources/Sites/<Grid>/<Site>/CEs/<CE>[/Queues/<Q>])
        "architecture", "Architecture", "OS", "Platform", "SubmissionMode", "LocalCEType", "LocalSE",
        "Tag", "Tags", "RequiredTag", "RequiredTags", "MaxRAM", "NumberOfProcessors",
        "maxNumberOfProcessors", "NumberOfGPUs", "WholeNode", "MultiProcessorStrategy", "maxCPUTime",
        "SI00", "CPUNormalizationFactor", "CPUScalingFactor", "MaxTotalJobs", "MaxWaitingJobs",
        "WaitingToRunningRatio", "BundleProxy", "ExtraPilotOptions", "GenericOptions",
        "PilotRunDirectory", "SharedArea", "WorkingDirectory", "WorkArea", "InfoArea",
        "ExecutableArea", "Preamble", "SubmissionPolicy", "Timeout", "RemoveOutput", "KeepWorkArea",
        "DaysToKeepLogs", "DaysToKeepRemoteLogs", "PilotBenchmark", "LogLevel", "Name",
        "MaxCPUTime", "MaxCPUTimeNormalized", "CPUPower", "MaxProcessors", "RequiredRAM",
        "ContainerRoot", "ContainerBind", "ContainerOptions", "InstallDIRACInContainer",
        "InnerCESubmissionType", "AsyncSubmission", "AlwaysIncludeProxy", "JobType",
        "Accounting", "Monitoring", "UserEnvVariables", "EnvironmentVariables",
    }
)
#: Options this CE reads outside the CE-parameter parser (VM endpoint settings).
OTHER_CE_OPTIONS = frozenset({"Context_EndpointURL", "Context_TokenSecretFile"}) | frozenset(
    {  # the VMDirector's per-CE / per-queue overrides (Agent/VMDirector.py); LostPilotGrace also the CE's
        "BootTimeout", "ZombieGrace", "OrphanGrace", "LostPilotGrace", "HeartbeatTimeout", "FizzleSeconds",
        "BackoffSeconds", "DeletingTimeout", "MaxLifetime", "HS06PerCore",
    }
)
