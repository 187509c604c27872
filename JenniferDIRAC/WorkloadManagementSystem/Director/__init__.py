"""The VMDirector's parts, one idea each; ``Agent/VMDirector.py`` is the DIRAC agent that runs them.

- ``discovery``: which cloud CEs the agent serves, with each queue's parameters
- ``thresholds``: the lifecycle thresholds of a CE and of each of its queues
- ``cloudaccess``: each CE's backend, kept between cycles, and the ONE listing of a cycle
- ``pilotrecords``: the pilot records of a CE's VMs (PilotAgentsDB or PilotManager)
- ``vmrecords``: the VM records read from and written to VMDB in a cycle
- ``sightings``: the orphan sightings of the last cycle, kept across a restart
- ``apply``: pilot statuses, deletions and closed records of a decision
- ``accounting``: the accounting of finished VMs
- ``report``: what one CE's cycle did, and the exception that skips a CE for a cycle
"""
