"""The pilot starts with the cores of the flavor its VM landed on, as its own options.

DIRAC's SiteDirector writes the pilot options into the wrapper (PilotWrapper's ``opt = "..."``
line) before ``submitJob``, but the flavor is only known per VM, after any capacity fallback.
So the wrapper is changed once, the same for every VM of a submission (and sealed as it is),
to add at run time the cores its VM's ``pilot.env`` exports (``DIRAC_NUMBER_OF_PROCESSORS``,
written by the CE for the flavor each VM was created with):

- ``--pilotProcessors=N``: DIRAC's Pilot "Number of processors allocated to this pilot"
  (``-N`` is the CE name there, ``-m``/``--maxNumberOfProcessors`` a per-payload limit);
- ``-o /Resources/Computing/CEDefaults/NumberOfProcessors=N``: what
  ``JobParameters.getNumberOfProcessors`` reads first. The Pilot's ConfigureSite writes every
  ``-o`` into its configuration after CheckWNCapabilities has written its own count there (the
  queue's NumberOfProcessors, or 1), so the inner CE the JobAgent runs and its job matching use
  N. It goes first: the Pilot keeps the last ``-o`` as its generic option.

A wrapper that is not DIRAC's (no single options line) is left as it is.
"""

from __future__ import annotations

import re

#: DIRAC's PilotWrapper: the one line holding the options given by the SiteDirector
_OPTIONS_LINE = re.compile(r'^opt = "[^"\n]*"\n', re.M)
CORES_VARIABLE = "DIRAC_NUMBER_OF_PROCESSORS"
# Inside the wrapper's unquoted bash heredoc: no $, backquote or backslash in these lines.
_ADDED = (
    "# JenniferDIRAC: the cores of the flavor this VM landed on (pilot.env), as pilot options\n"
    f"_jdirac_cores = os.environ.get('{CORES_VARIABLE}', '')\n"
    "if _jdirac_cores.isascii() and _jdirac_cores.isdigit() and int(_jdirac_cores) > 0:\n"
    "  opt = '-o /Resources/Computing/CEDefaults/NumberOfProcessors=' + _jdirac_cores + ' ' + opt"
    " + ' --pilotProcessors=' + _jdirac_cores\n"
)


def with_flavor_processors(wrapper: str) -> str | None:
    """`wrapper` whose pilot gets its VM's cores as options; None if it is not DIRAC's wrapper."""
    if _ADDED in wrapper:
        return wrapper
    lines = _OPTIONS_LINE.findall(wrapper)
    if len(lines) != 1:
        return None
    return _OPTIONS_LINE.sub(lambda match: match.group(0) + _ADDED, wrapper, count=1)
