"""DIRAC accounting type for cloud VMs: one record per finished VM, sent by the VMDirector.

Keys: ``Site``, ``CE`` (the cloud CE), ``VO``, ``Flavor``, ``Profile`` (the user-data profile)
and ``EndStatus`` (``Completed``, ``Fizzled``: ended within FizzleSeconds, ``NeverStarted``:
deleted before it ran). Values: ``VMs`` (count), ``Cores``, ``WallTime`` (seconds from
start to end), ``CoreWallTime`` (WallTime x Cores) and ``NormCoreWallTime`` (CoreWallTime x HS06
per core, i.e. HS06-seconds). The record's start and end times are the VM's.

DIRAC's DataStore finds this module through ObjectLoader
(``AccountingSystem.Client.Types.VirtualMachine`` in any installed extension).
"""

from DIRAC import S_ERROR, S_OK
from DIRAC.AccountingSystem.Client.Types.BaseAccountingType import BaseAccountingType


class VirtualMachine(BaseAccountingType):
    def __init__(self):
        super().__init__()
        self.definitionKeyFields = [
            ("Site", "VARCHAR(64)"),
            ("CE", "VARCHAR(128)"),
            ("VO", "VARCHAR(64)"),
            ("Flavor", "VARCHAR(64)"),
            ("Profile", "VARCHAR(64)"),
            ("EndStatus", "VARCHAR(32)"),
        ]
        self.definitionAccountingFields = [
            ("VMs", "INT UNSIGNED"),
            ("Cores", "INT UNSIGNED"),
            ("WallTime", "BIGINT UNSIGNED"),
            ("CoreWallTime", "BIGINT UNSIGNED"),
            ("NormCoreWallTime", "DOUBLE"),
        ]
        self.checkType()

    def checkRecord(self):
        for field in self.valueFieldsList:
            value = self.getValue(field)["Value"]
            if value < 0:
                return S_ERROR(f"VirtualMachine accounting: {field} must not be negative ({value})")
        if self.endTime < self.startTime:
            return S_ERROR("VirtualMachine accounting: end time before start time")
        return S_OK()
