"""The VM endpoint: HTTP(S) API through which pilot VMs report (boot and pilot logs, heartbeats,
shutdown messages) and fetch contextualization files. Run by the agent
WorkloadManagement/VMEndpoint; the WSGI application itself (app.py) knows nothing of DIRAC."""
