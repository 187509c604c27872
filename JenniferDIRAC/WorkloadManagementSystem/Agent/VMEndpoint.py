"""VMEndpoint: the HTTP(S) endpoint that pilot VMs report to, run as a DIRAC agent.

.. literalinclude:: ../ConfigTemplate.cfg
  :start-after: ##BEGIN VMEndpoint
  :end-before: ##END
  :dedent: 2
  :caption: VMEndpoint options

``initialize()`` starts the server (``VMEndpoint/server.py``: uvicorn, the server DiracX runs its
FastAPI services on, serving an ASGI app from one event-loop thread: waiting connections cost no
thread) on Host:Port; each cycle then does the housekeeping: restarts the server if its thread
died, re-reads the token secret file (so secrets rotate without a restart), forgets idle VMs,
logs the summary of refused requests and the request statistics. Started and supervised like any agent:
``dirac-agent WorkloadManagement/VMEndpoint`` (runit in a DIRACOS2 installation, or any process
supervisor in a pip installation). An agent rather than a Tornado service, because DIRAC's
Tornado services cannot run from a PyPI installation.
"""

from __future__ import annotations

import signal
import sys

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule

from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import serve_endpoint_metrics
from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import SecretFileError, TokenAuthority
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.app import EndpointLimits, VMEndpointApp
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.heartbeats import HeartbeatBatching, HeartbeatBuffer
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.server import EndpointServer, ServerBounds, TLSFiles
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.settings import CS_ENDPOINT_PATH, endpoint_settings
from JenniferDIRAC.WorkloadManagementSystem.VMEndpointServer.store import VMStateStore

#: Per-VM bookkeeping (heartbeat rate, log sizes) is dropped after this long without a call.
FORGET_IDLE_VM_SECONDS = 3 * 86400


class VMEndpoint(AgentModule):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server: EndpointServer | None = None
        self.app: VMEndpointApp | None = None
        self.heartbeats: HeartbeatBuffer | None = None
        self.secretFile = ""

    def _intOption(self, name: str, default: int, minimum: int) -> int:
        # A string default: DIRAC would silently turn an unparsable value into a typed default.
        value = self.am_getOption(name, str(default))
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"option {name}: {value!r} is not an integer") from None
        if number < minimum:
            raise ValueError(f"option {name}: {number} is below the minimum {minimum}")
        return number

    def _numberOption(self, name: str, default: float, minimum: float) -> float:
        # A string default: DIRAC would silently turn an unparsable value into a typed default.
        value = self.am_getOption(name, str(default))
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"option {name}: {value!r} is not a number") from None
        if not number >= minimum:  # also refuses NaN
            raise ValueError(f"option {name}: {number:g} is below the minimum {minimum:g}")
        return number

    def _log(self, level: str, message: str) -> None:
        {"info": self.log.info, "warn": self.log.warn}.get(level, self.log.error)(message)

    def _tls(self) -> TLSFiles | None:
        if str(self.am_getOption("UseTLS", "yes")).strip().lower() in ("no", "false", "0"):
            return None
        cert = self.am_getOption("CertFile", "")
        key = self.am_getOption("KeyFile", "")
        if not cert or not key:
            from DIRAC.Core.Security.Locations import getHostCertificateAndKeyLocation

            locations = getHostCertificateAndKeyLocation()
            if not locations:
                raise ValueError("option UseTLS: no CertFile/KeyFile given and no host certificate found")
            cert, key = cert or locations[0], key or locations[1]
        return TLSFiles(cert, key)

    def _readSecrets(self) -> TokenAuthority:
        return TokenAuthority.from_secret_file(self.secretFile)

    def initialize(self):
        self.secretFile = self.am_getOption("TokenSecretFile", "") or endpoint_settings().token_secret_file
        if not self.secretFile:
            return S_ERROR(f"option TokenSecretFile: not set here nor in {CS_ENDPOINT_PATH}/TokenSecretFile")
        try:
            authority = self._readSecrets()
            limits = EndpointLimits(
                max_upload_bytes=self._intOption("MaxUploadBytes", 1048576, 1024),
                max_bytes_per_vm=self._intOption("MaxBytesPerVM", 4194304, 1024),
                max_logs_per_vm=self._intOption("MaxLogsPerVM", 8, 1),
                min_heartbeat_seconds=self._intOption("MinHeartbeatSeconds", 10, 0),
                max_concurrent_requests=self._intOption("MaxConcurrentRequests", 64, 1),
                max_concurrent_requests_per_vm=self._intOption("MaxConcurrentRequestsPerVM", 4, 1),
                requests_per_minute_per_vm=self._numberOption("RequestsPerMinutePerVM", 60, 1),
                request_burst_per_vm=self._intOption("RequestBurstPerVM", 30, 1),
                body_timeout_seconds=self._numberOption("BodyTimeout", 30, 1),
                store_threads=self._intOption("StoreThreads", 8, 1),
                refusal_log_seconds=self._numberOption("RefusalLogSeconds", 60, 1),
            )
            bounds = ServerBounds(
                max_connections=self._intOption("MaxConnections", 4096, 1),
                backlog=self._intOption("Backlog", 2048, 1),
                header_timeout_seconds=self._numberOption("HeaderTimeout", 10, 1),
                keep_alive_seconds=self._numberOption("KeepAliveTimeout", 5, 1),
            )
            batching = HeartbeatBatching(
                batch_rows=self._intOption("HeartbeatBatchRows", 200, 1),
                flush_seconds=self._intOption("HeartbeatFlushMilliseconds", 1000, 1) / 1000,
                max_buffered=self._intOption("HeartbeatBufferRows", 20000, 1),
            )
            port = self._intOption("Port", 8449, 0)
            tls = self._tls()
        except (SecretFileError, ValueError) as exc:
            return S_ERROR(str(exc))
        store = VMStateStore()
        self.heartbeats = HeartbeatBuffer(store, batching, log=self._log)
        self.app = VMEndpointApp(
            authority,
            store,
            limits,
            context_dir=self.am_getOption("ContextDirectory", "") or None,
            log=self._log,
            heartbeats=self.heartbeats,
        )
        self.server = EndpointServer(self.app, self.am_getOption("Host", "0.0.0.0"), port, tls=tls, bounds=bounds)
        try:
            self.server.start()
        except OSError as exc:  # includes ssl.SSLError
            return S_ERROR(f"VMEndpoint cannot serve on port {port}: {exc}")
        self.log.notice("VMEndpoint serving", f"{self.server.url} (token secrets from {self.secretFile})")
        try:
            self.metricsServer = serve_endpoint_metrics(
                self.app, self.am_getOption("MetricsPort", 0), self.am_getOption("MetricsHost", "127.0.0.1")
            )
        except (ValueError, OSError) as exc:
            self.server.stop()
            return S_ERROR(f"VMEndpoint MetricsPort: {exc}")
        # runit and systemd stop a service with SIGTERM, which would end the process without
        # finalize(): the buffered heartbeats are written first.
        signal.signal(signal.SIGTERM, self._stopOnSignal)
        if self.server.max_connections < bounds.max_connections:
            self.log.warn(
                "MaxConnections lowered to fit the open file limit",
                f"{bounds.max_connections} -> {self.server.max_connections} (raise the limit with ulimit -n)",
            )
        return S_OK()

    def execute(self):
        if not self.server.alive:
            self.log.error("VMEndpoint server thread ended, restarting it")
            try:
                self.server.stop()
                self.server.start()
            except OSError as exc:
                return S_ERROR(f"VMEndpoint cannot restart: {exc}")
        try:
            self.app.set_authority(self._readSecrets())
        except SecretFileError as exc:
            self.log.error("Keeping the previous token secrets", str(exc))
        forgotten = self.app.forget_vms_older_than(FORGET_IDLE_VM_SECONDS)
        self.app.refusals.flush()
        counters = ", ".join(f"{code}: {count}" for code, count in sorted(self.app.counters.items()))
        self.log.notice(
            "VMEndpoint cycle done",
            f"{self.server.url}; responses so far {{{counters}}}; connections {self.server.connections}, "
            f"requests in progress {self.app.in_progress}; idle VMs forgotten {forgotten}",
        )
        return S_OK()

    def _stopOnSignal(self, signum, frame):
        # dirac-agent does not call finalize() on SIGTERM (its reactor's finally is not reached):
        # stop here. server.stop() and close() wait with timeouts, never for ever.
        self.log.notice("VMEndpoint stopping on signal", str(signum))
        self.finalize()
        sys.exit(0)

    def finalize(self):
        if self.server is not None:
            self.server.stop()  # answers the requests in progress, then refuses new ones
            self.server = None
        if self.heartbeats is not None:
            self.heartbeats.close()
            self.log.notice("VMEndpoint heartbeats written", f"{self.heartbeats.flushes} batches")
            self.heartbeats = None
        return S_OK()
