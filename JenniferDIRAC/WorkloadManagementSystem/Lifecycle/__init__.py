"""The VM lifecycle as policy: pure functions and types that decide (what to do with a VM, when a
queue backs off and probes). No DIRAC, no database, no cloud: the agents, the CE and VMDB call in."""
