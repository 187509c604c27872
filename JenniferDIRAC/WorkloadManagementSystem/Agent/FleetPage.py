"""FleetPage: the read-only fleet page for operators, run as a DIRAC agent.

.. literalinclude:: ../ConfigTemplate.cfg
  :start-after: ##BEGIN FleetPage
  :end-before: ##END
  :dedent: 2
  :caption: FleetPage options

``initialize()`` starts the HTTPS server (``FleetPage/server.py``: uvicorn, a client
certificate of the DIRAC CA required) on Host:Port; each cycle restarts it if its thread died.
Why not a page of DIRAC's WebApp: see ``FleetPage/__init__.py``.
"""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule

from JenniferDIRAC.WorkloadManagementSystem.FleetPageServer.app import FleetPageApp
from JenniferDIRAC.WorkloadManagementSystem.FleetPageServer.plots import parse_plot
from JenniferDIRAC.WorkloadManagementSystem.FleetPageServer.server import FleetPageServer


class FleetPage(AgentModule):
    def initialize(self):
        from DIRAC.Core.Security.Locations import getCAsLocation, getHostCertificateAndKeyLocation

        port = self.am_getOption("Port", "8450")
        try:
            port = int(port)
        except (TypeError, ValueError):
            return S_ERROR(f"FleetPage option Port: {port!r} is not a port number")
        cert, key = self.am_getOption("CertFile", ""), self.am_getOption("KeyFile", "")
        if not cert or not key:
            locations = getHostCertificateAndKeyLocation()
            if not locations:
                return S_ERROR("FleetPage options CertFile/KeyFile: not given and no host certificate found")
            cert, key = cert or locations[0], key or locations[1]
        caDir = getCAsLocation()
        if not caDir:
            return S_ERROR("FleetPage: no CA directory (X509_CERT_DIR / Grid-Security) to verify users with")
        try:
            plots = tuple(parse_plot(text) for text in self.am_getOption("Plots", []))
        except ValueError as exc:
            return S_ERROR(f"FleetPage {exc}")
        from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

        app = FleetPageApp(
            VMStateClient(),
            metrics_url=self.am_getOption("DirectorMetricsURL", ""),
            plots=plots,
            log=self.log.warn,
        )
        self.server = FleetPageServer(app, self.am_getOption("Host", "0.0.0.0"), port, cert, key, caDir)
        try:
            self.server.start()
        except OSError as exc:  # includes ssl.SSLError
            return S_ERROR(f"FleetPage cannot serve on port {port}: {exc}")
        self.log.notice("FleetPage serving", self.server.url)
        return S_OK()

    def execute(self):
        if not self.server.alive:
            self.log.error("FleetPage server thread ended, restarting it")
            try:
                self.server.stop()
                self.server.start()
            except OSError as exc:
                return S_ERROR(f"FleetPage cannot restart: {exc}")
        return S_OK()

    def finalize(self):
        self.server.stop()
        return S_OK()
