"""The VM endpoint: HTTP(S) API through which pilot VMs report (boot and pilot logs, heartbeats,
shutdown messages) and fetch contextualization files. Run by the agent
WorkloadManagement/VMEndpoint; the ASGI application (app.py) and its uvicorn server (server.py)
know nothing of DIRAC but the store (store.py: VMStateClient)."""
