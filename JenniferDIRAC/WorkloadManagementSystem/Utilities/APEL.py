"""Accounting of finished VMs: DIRAC's ``VirtualMachine`` accounting type and APEL records.

APEL records are ``APEL-individual-job-message: v0.3`` messages, one per VM, written as one
message per batch into a dirq ``QueueSimple`` directory: the layout APEL's ``ssmsend`` reads
(``[messaging] path = <ApelDirectory>`` in ssm's sender.cfg). dirq writes each message to a
temporary file and renames it, so ssmsend never sees half a message.

Fields written for each VM (as VCYCLE wrote them for JENNIFER2, so the two series compare):

==========================  =====================================================================
Site                        GOCDB name of the DIRAC site (``/Resources/Sites/<G>/<Site>/Name``),
                            else the DIRAC site name
SubmitHost                  ``<CE name>/jenniferdirac`` (deterministic: a record written twice is
                            the same record, which APEL's server stores once)
MachineName                 the VM's name (``jdirac-<uuid>``)
LocalJobId                  the VM's cloud uuid (its name if the cloud gave no id)
LocalUserId                 the VM's name
Queue                       the user-data profile, else the CE name
GlobalUserName              ``/DC=<CE components reversed>`` (VCYCLE's rule), unless configured
FQAN                        ``/<VO>/Role=NULL/Capability=NULL`` unless configured (omitted if no VO)
VO                          the VM's VO
WallDuration                seconds from the VM's start (first seen ACTIVE) to its end
CpuDuration                 = WallDuration, as VCYCLE: the guest's CPU use is not known
Processors                  the flavor's cores
NodeCount                   1
StartTime, EndTime          Unix times
MemoryReal, MemoryVirtual   the flavor's RAM in kB
ServiceLevelType            HEPSPEC
ServiceLevel                HS06 per core of the CE (CE option ``HS06PerCore``, default 10)
InfrastructureDescription   APEL-JENNIFERDIRAC
InfrastructureType          grid
==========================  =====================================================================

VMs whose wall time is shorter than FizzleSeconds get no APEL record (as VCYCLE): they did no
work and would only dilute the site's figures. They are still recorded in DIRAC's accounting,
with EndStatus ``Fizzled``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from DIRAC import S_ERROR, S_OK, gLogger

MESSAGE_HEADER = "APEL-individual-job-message: v0.3"
RECORD_SEPARATOR = "%%"
INFRASTRUCTURE_DESCRIPTION = "APEL-JENNIFERDIRAC"
DEFAULT_HS06_PER_CORE = 10.0

END_COMPLETED = "Completed"
END_FIZZLED = "Fizzled"
END_NEVER_STARTED = "NeverStarted"


@dataclass(frozen=True)
class APELRecord:
    """One ``APEL-individual-job-message: v0.3`` record (see the module docstring)."""

    site: str
    submit_host: str
    machine_name: str
    local_job_id: str
    local_user_id: str
    queue: str
    global_user_name: str
    fqan: str
    vo: str
    wall_duration: int
    cpu_duration: int
    processors: int
    start_time: int
    end_time: int
    memory_kb: int
    service_level: float
    node_count: int = 1
    service_level_type: str = "HEPSPEC"
    infrastructure_description: str = INFRASTRUCTURE_DESCRIPTION
    infrastructure_type: str = "grid"

    def lines(self) -> list[str]:
        fields = [
            ("Site", self.site),
            ("SubmitHost", self.submit_host),
            ("MachineName", self.machine_name),
            ("LocalJobId", self.local_job_id),
            ("LocalUserId", self.local_user_id),
            ("Queue", self.queue),
            ("GlobalUserName", self.global_user_name),
            ("FQAN", self.fqan),
            ("VO", self.vo),
            ("WallDuration", self.wall_duration),
            ("CpuDuration", self.cpu_duration),
            ("Processors", self.processors),
            ("NodeCount", self.node_count),
            ("StartTime", self.start_time),
            ("EndTime", self.end_time),
            ("InfrastructureDescription", self.infrastructure_description),
            ("InfrastructureType", self.infrastructure_type),
            ("MemoryReal", self.memory_kb),
            ("MemoryVirtual", self.memory_kb),
            ("ServiceLevelType", self.service_level_type),
            ("ServiceLevel", f"{self.service_level:g}"),
        ]
        return [f"{name}: {_one_line(value)}" for name, value in fields if value not in ("", None)]


def _one_line(value) -> str:
    # A newline in a value would start a new field (or end the record) in APEL's parser.
    return " ".join(str(value).split())


def format_message(records: Iterable[APELRecord]) -> str:
    """One APEL message holding ``records`` (each ends with ``%%``)."""
    parts = [MESSAGE_HEADER]
    for record in records:
        parts.extend(record.lines())
        parts.append(RECORD_SEPARATOR)
    return "\n".join(parts) + "\n"


def parse_message(text: str) -> list[dict[str, str]]:
    """The records of an individual job message, as APEL's parser reads them (header, then
    ``Key: value`` lines, records ended by ``%%``)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != MESSAGE_HEADER:
        raise ValueError(f"not an APEL individual job message: {lines[0] if lines else ''!r}")
    records, current = [], {}
    for line in lines[1:]:
        if line.strip() == RECORD_SEPARATOR:
            records.append(current)
            current = {}
        elif line.strip():
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
    if current:
        raise ValueError("APEL message ends inside a record (no final %%)")
    return records


def write_message(records: list[APELRecord], outgoing_dir: str) -> str | None:
    """Add one message with ``records`` to the dirq queue in ``outgoing_dir``; its path, or
    None when there is nothing to write."""
    if not records:
        return None
    from dirq.QueueSimple import QueueSimple

    os.makedirs(outgoing_dir, exist_ok=True)
    queue = QueueSimple(outgoing_dir)
    name = queue.add(format_message(records))
    return os.path.join(outgoing_dir, name)


def read_messages(outgoing_dir: str) -> list[str]:
    """The messages waiting in a dirq queue (what ssmsend would send), oldest first, as text
    (``parse_message`` reads them; dirq hands back the bytes written by ``write_message``)."""
    from dirq.QueueSimple import QueueSimple

    queue = QueueSimple(outgoing_dir)
    messages = []
    for name in queue:
        if queue.lock(name):
            messages.append(queue.get(name).decode("utf-8"))
            queue.unlock(name)
    return messages


# --- from a VMDB record to accounting ----------------------------------------------------------
def gocdb_site_name(dirac_site: str) -> str:
    """The GOCDB name of a DIRAC site (its ``Name`` option in the CS), else the DIRAC name."""
    if not dirac_site:
        return ""
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getGOCSiteName

    result = getGOCSiteName(dirac_site)
    return result["Value"] if result["OK"] else dirac_site


@dataclass
class AccountingSettings:
    """How finished VMs are accounted (VMDirector options)."""

    fizzle_seconds: int = 600
    apel_directory: str = ""  # "" = no APEL records
    send_dirac_accounting: bool = True
    hs06_per_core: Callable[[dict], float] = field(default=lambda vm: DEFAULT_HS06_PER_CORE)
    site_name: Callable[[str], str] = field(default=gocdb_site_name)
    fqan: Callable[[dict], str] = field(default=lambda vm: f"/{vm['vo']}/Role=NULL/Capability=NULL" if vm.get("vo") else "")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def end_status(vm: dict, fizzle_seconds: int) -> str:
    if not vm.get("started"):
        return END_NEVER_STARTED
    return END_FIZZLED if vm["wall_seconds"] < fizzle_seconds else END_COMPLETED


def global_user_name(ce: str) -> str:
    """VCYCLE's host-like DN for a machine: ``/DC=org/DC=example/DC=cloud`` for cloud.example.org."""
    return "".join(f"/DC={part}" for part in reversed([p for p in ce.split(".") if p]))


def apel_record(vm: dict, settings: AccountingSettings) -> APELRecord | None:
    """The APEL record of a finished VM (a VMDB accounting record), None if it fizzled."""
    if not vm.get("started") or not vm.get("end") or vm["wall_seconds"] < settings.fizzle_seconds:
        return None
    start, end = _utc(vm["started"]), _utc(vm["end"])
    return APELRecord(
        site=settings.site_name(vm["site"]) or vm["ce"],
        submit_host=f"{vm['ce']}/jenniferdirac",
        machine_name=vm["vm_name"],
        local_job_id=vm.get("vm_id") or vm["vm_name"],
        local_user_id=vm["vm_name"],
        queue=vm.get("profile") or vm["ce"],
        global_user_name=global_user_name(vm["ce"]),
        fqan=settings.fqan(vm),
        vo=vm.get("vo", ""),
        wall_duration=int(vm["wall_seconds"]),
        cpu_duration=int(vm["wall_seconds"]),
        processors=max(1, int(vm.get("cores") or 1)),
        start_time=int(start.timestamp()),
        end_time=int(end.timestamp()),
        memory_kb=int(vm.get("ram_mb") or 0) * 1024,
        service_level=float(settings.hs06_per_core(vm)),
    )


def dirac_accounting_record(vm: dict, settings: AccountingSettings):
    """The ``VirtualMachine`` accounting register of a finished VM (values checked)."""
    from JenniferDIRAC.AccountingSystem.Client.Types.VirtualMachine import VirtualMachine

    cores = int(vm.get("cores") or 0)
    wall = int(vm["wall_seconds"])
    end = vm.get("end") or vm.get("deleted")
    start = vm.get("started") or vm.get("created") or end
    register = VirtualMachine()
    register.setStartTime(_utc(start).replace(tzinfo=None))
    register.setEndTime(_utc(max(end, start)).replace(tzinfo=None))
    result = register.setValuesFromDict(
        {
            "Site": vm.get("site") or "Unknown",
            "CE": vm["ce"],
            "VO": vm.get("vo") or "Unknown",
            "Flavor": vm.get("flavor") or "Unknown",
            "Profile": vm.get("profile") or "default",
            "EndStatus": end_status(vm, settings.fizzle_seconds),
            "VMs": 1,
            "Cores": cores,
            "WallTime": wall,
            "CoreWallTime": wall * cores,
            "NormCoreWallTime": float(wall * cores * settings.hs06_per_core(vm)),
        }
    )
    if not result["OK"]:
        return result
    result = register.checkValues()
    if not result["OK"]:
        return result
    return S_OK(register)


def account_finished_vms(vms: list[dict], settings: AccountingSettings, client=None):
    """Account finished VMs (VMDB accounting records: ``VMStateClient.getAccountingRecords()``).

    For each VM: a ``VirtualMachine`` register to DIRAC's DataStore, an APEL record unless it
    fizzled (one message for the batch), then the VM is marked accounted in VMDB. A failure
    leaves the VMs unaccounted, so the next cycle tries again; a record written twice is
    harmless (APEL's server keys records by SubmitHost, LocalJobId and EndTime).
    S_OK({"accounted": [names], "apel": path or None, "apel_records": n, "skipped": [names]})."""
    if client is None:
        from JenniferDIRAC.WorkloadManagementSystem.Client.VMStateClient import VMStateClient

        client = VMStateClient()
    ready = [vm for vm in vms if vm.get("end") or vm.get("deleted")]
    skipped = [vm["vm_name"] for vm in vms if vm not in ready]
    if not ready:
        return S_OK({"accounted": [], "apel": None, "apel_records": 0, "skipped": skipped})

    if settings.send_dirac_accounting:
        from DIRAC.AccountingSystem.Client.DataStoreClient import gDataStoreClient

        for vm in ready:
            result = dirac_accounting_record(vm, settings)
            if not result["OK"]:
                return S_ERROR(f"accounting record of VM {vm['vm_name']}: {result['Message']}")
            gDataStoreClient.addRegister(result["Value"])
        result = gDataStoreClient.commit()
        if not result["OK"]:
            return S_ERROR(f"DIRAC accounting commit failed: {result['Message']}")

    path, apel_count = None, 0
    if settings.apel_directory:
        records = [r for r in (apel_record(vm, settings) for vm in ready) if r is not None]
        try:
            path = write_message(records, settings.apel_directory)
        except OSError as exc:
            return S_ERROR(f"cannot write APEL records to {settings.apel_directory}: {exc}")
        apel_count = len(records)

    names = [vm["vm_name"] for vm in ready]
    result = client.markAccounted(names)
    if not result["OK"]:
        return result
    gLogger.info("Accounted finished VMs", f"{len(names)} ({apel_count} APEL records)")
    return S_OK({"accounted": names, "apel": path, "apel_records": apel_count, "skipped": skipped})


def account_finished_vm(vm: dict, settings: AccountingSettings, client=None):
    """Account one finished VM (see ``account_finished_vms``)."""
    return account_finished_vms([vm], settings, client)
