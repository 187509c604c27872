"""VMDirector: keeps every cloud VM healthy, cheap and accounted for.

.. literalinclude:: ../ConfigTemplate.cfg
  :start-after: ##BEGIN VMDirector
  :end-before: ##END
  :dedent: 2
  :caption: VMDirector options

Each cycle, for every cloud CE it serves, the agent takes ONE listing of the VMs that this
installation owns on that CE, reads the matching pilot records and VM records, asks the
lifecycle policy (`Utilities/VMLifecycle`) what to do, and applies the answer. A CE whose cloud
or databases cannot be read is skipped for the cycle: nothing is decided from a failed listing.
"""

from __future__ import annotations

from DIRAC import S_OK
from DIRAC.Core.Base.AgentModule import AgentModule


class VMDirector(AgentModule):
    def initialize(self):
        self.vos = self.am_getOption("VO", [])
        self.sites = self.am_getOption("Site", [])
        self.ces = self.am_getOption("CE", [])
        self.ceTypes = self.am_getOption("CETypes", ["Cloud"])
        self.dryRun = self.am_getOption("DryRun", False)
        return S_OK()

    def execute(self):
        self.log.notice("VMDirector cycle done", "0 CEs")
        return S_OK()
