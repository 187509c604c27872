"""The parts of the cloud CE, one idea each; ``Resources/Computing/CloudComputingElement.py`` is
the DIRAC shell that DIRAC's ObjectLoader loads for ``CEType = Cloud`` and that composes them.

- backendholder: the CE's backend, rebuilt when its credential files change, and the listing
  it shares with the CEs of its cloud project;
- vmstate: the optional VM database (VMStateClient), whose failures never lose a cloud answer;
- pilotrecords: what VMDB records of the CE's VMs, and the VMs just asked for that a listing may
  not show yet (LostPilotGrace);
- resolution: the CS's image / flavor / network references resolved by the backend;
- placements: flavors and zones in order of preference, skipped while the cloud has no capacity;
- lending: QuotaWeight / OthersQuotaWeight shares;
- pilotdata: a VM's user data (profile, template, endpoint tokens, sealed bootstrap);
- creation: the creates of one submission, retried with fresh ids and on the next flavor/zone.

The behaviour and every option: docs/CE-OPTIONS.md.
"""
