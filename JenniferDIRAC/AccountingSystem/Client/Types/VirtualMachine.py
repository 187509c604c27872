"""DIRAC accounting type for cloud VMs: one record per finished VM, sent by the VMDirector.

Keys: ``Site``, ``CE`` (the cloud CE), ``VO``, ``Flavor``, ``Profile`` (the user-data profile),
``EndStatus`` (``Completed``, ``Fizzled``: ended within FizzleSeconds, ``NeverStarted``:
deleted before it ran) and ``BenchmarkSource`` (where the HS06 per core came from: ``Flavor``,
the cloud's ``accounting:benchmark_*`` flavor properties, or ``CE``, the CE option).

Values: ``VMs`` (count), ``Cores``, ``WallTime`` (seconds from start to end), ``CoreWallTime``
(WallTime x Cores), ``NormCoreWallTime`` (CoreWallTime x HS06 per core, HS06-seconds),
``CPUTime`` (CPU seconds the guest's kernel counted on all its cores, 0 if the VM never
reported them) and ``NormCPUTime`` (CPUTime x HS06 per core). The record's start and end
times are the VM's.

The value fields of v0.1.0 come first, in their order, so that ``upgrade_type`` (see
``JenniferDIRAC.AccountingSystem.DB.TypeUpgrade``) can add the newer ones to an existing
AccountingDB without touching its records.

DIRAC's DataStore finds this module through ObjectLoader
(``AccountingSystem.Client.Types.VirtualMachine`` in any installed extension).
"""

from DIRAC import S_ERROR, S_OK
from DIRAC.AccountingSystem.Client.Types.BaseAccountingType import BaseAccountingType

#: What v0.1.0 registered (kept for the upgrade of existing AccountingDBs and its test).
V010_KEY_FIELDS = (
    ("Site", "VARCHAR(64)"),
    ("CE", "VARCHAR(128)"),
    ("VO", "VARCHAR(64)"),
    ("Flavor", "VARCHAR(64)"),
    ("Profile", "VARCHAR(64)"),
    ("EndStatus", "VARCHAR(32)"),
)
V010_VALUE_FIELDS = (
    ("VMs", "INT UNSIGNED"),
    ("Cores", "INT UNSIGNED"),
    ("WallTime", "BIGINT UNSIGNED"),
    ("CoreWallTime", "BIGINT UNSIGNED"),
    ("NormCoreWallTime", "DOUBLE"),
)
#: Added in v0.2.0, with the value records written before have for them.
ADDED_KEY_FIELDS = ((("BenchmarkSource", "VARCHAR(16)"), "Unknown"),)
ADDED_VALUE_FIELDS = ((("CPUTime", "BIGINT UNSIGNED"), 0), (("NormCPUTime", "DOUBLE"), 0))

END_STATUSES = ("Completed", "Fizzled", "NeverStarted")
BENCHMARK_SOURCES = ("Flavor", "CE", "Unknown")


class VirtualMachine(BaseAccountingType):
    def __init__(self):
        super().__init__()
        self.definitionKeyFields = [*V010_KEY_FIELDS, *(field for field, _ in ADDED_KEY_FIELDS)]
        self.definitionAccountingFields = [*V010_VALUE_FIELDS, *(field for field, _ in ADDED_VALUE_FIELDS)]
        self.checkType()

    def checkRecord(self):
        for field in self.valueFieldsList:
            value = self.getValue(field)["Value"]
            if value < 0:
                return S_ERROR(f"VirtualMachine accounting: {field} must not be negative ({value})")
        if self.endTime < self.startTime:
            return S_ERROR("VirtualMachine accounting: end time before start time")
        # The guest's counters cover all its cores: more CPU than cores x wall is a lying VM.
        cpu, core_wall = self.getValue("CPUTime")["Value"], self.getValue("CoreWallTime")["Value"]
        if cpu > core_wall:
            return S_ERROR(f"VirtualMachine accounting: CPUTime {cpu} s exceeds CoreWallTime {core_wall} s")
        return S_OK()
