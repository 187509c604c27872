"""``VMCapacity``: the (cloud, flavor, zone) combinations a cloud recently had no capacity for,
until when. Written by the CE that saw the refusal, read by the CEs of every process (the
SiteDirector's, the commands'), so that none of them tries a full flavor/zone again before
CapacityCacheSeconds have passed. Times are the database's (UTC_TIMESTAMP()): the processes
sharing a row need not agree on their clocks."""

from __future__ import annotations

from DIRAC import S_ERROR, S_OK

from JenniferDIRAC.WorkloadManagementSystem.DB.VMDBTables.values import RecordError, check_text

#: at most this long a row is kept (CapacityCacheSeconds is at most 86400)
MAX_SECONDS = 86400
_LIMITS = {"cloud": 64, "flavor": 128, "zone": 128}


def _checked(cloud: str, flavor: str, zone: str) -> tuple[str, str, str]:
    values = (check_text("cloud", cloud, required=True), check_text("flavor", flavor, required=True),
              check_text("zone", zone or ""))
    for (field, limit), value in zip(_LIMITS.items(), values):
        if len(value) > limit:
            raise RecordError(f"{field} is longer than {limit} characters")
    return values


class CapacityMemory:
    """Mixed into VMDB (``self`` is a DIRAC DB)."""

    def setNoCapacity(self, cloud: str, flavor: str, zone: str, seconds: int, reason: str = ""):
        """The cloud `cloud` (a key of at most 64 characters) has no capacity for (flavor, zone)
        for the next `seconds`; a longer memory already stored is kept."""
        try:
            cloud, flavor, zone = _checked(cloud, flavor, zone)
            seconds = int(seconds)
        except (RecordError, TypeError, ValueError) as exc:
            return S_ERROR(f"setNoCapacity: {exc}")
        if not 0 <= seconds <= MAX_SECONDS:
            return S_ERROR(f"setNoCapacity: seconds must be between 0 and {MAX_SECONDS}")
        result = self._update(
            "INSERT INTO VMCapacity (`Cloud`, `Flavor`, `Zone`, `Until`, `Reason`, `Updated`) "
            "VALUES (%s, %s, %s, UTC_TIMESTAMP() + INTERVAL %s SECOND, %s, UTC_TIMESTAMP()) "
            "ON DUPLICATE KEY UPDATE `Reason` = IF(VALUES(`Until`) > `Until`, VALUES(`Reason`), `Reason`), "
            "`Until` = GREATEST(`Until`, VALUES(`Until`)), `Updated` = VALUES(`Updated`)",
            args=(cloud, flavor, zone, seconds, str(reason or "")[:512]),
        )
        if not result["OK"]:
            return result
        # rows that expired a day ago are of no use to anyone
        return self._update(
            "DELETE FROM VMCapacity WHERE `Cloud` = %s AND `Until` < UTC_TIMESTAMP() - INTERVAL 1 DAY", args=(cloud,)
        )

    def purgeExpiredCapacity(self, batch_size: int = 1000):
        """Remove every row whose memory has ended, `batch_size` rows per statement (the
        VMDBRetentionAgent's cycle: setNoCapacity purges only the cloud it writes to);
        S_OK(rows removed)."""
        total = 0
        while True:
            result = self._update("DELETE FROM VMCapacity WHERE `Until` <= UTC_TIMESTAMP() LIMIT %s",
                                  args=(int(batch_size),))
            if not result["OK"]:
                return result
            total += int(result["Value"])
            if int(result["Value"]) < batch_size:
                return S_OK(total)

    def getNoCapacity(self, cloud: str):
        """S_OK([{"flavor", "zone", "seconds" (left), "reason"}]) of `cloud`'s full combinations."""
        try:
            cloud = check_text("cloud", cloud, required=True)
        except RecordError as exc:
            return S_ERROR(f"getNoCapacity: {exc}")
        result = self._query(
            "SELECT `Flavor`, `Zone`, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), `Until`), `Reason` FROM VMCapacity "
            "WHERE `Cloud` = %s AND `Until` > UTC_TIMESTAMP()",
            args=(cloud,),
        )
        if not result["OK"]:
            return result
        return S_OK([
            {"flavor": flavor, "zone": zone, "seconds": max(1, int(left)), "reason": reason}
            for flavor, zone, left, reason in result["Value"]
        ])
