"""Print the APEL cloud message cASO writes for one VM given as JSON on stdin (run with the
python of a venv where cASO from PyPI is installed; see test_caso_comparison.py)."""

import datetime as dt
import json
import sys

from caso.record import CloudRecord

d = json.load(sys.stdin)
r = CloudRecord(
    start_time=dt.datetime.fromtimestamp(d["start"], dt.UTC),
    end_time=dt.datetime.fromtimestamp(d["end"], dt.UTC),
    uuid=d["uuid"],
    name=d["name"],
    user_id=d["user_id"],
    group_id=d["group_id"],
    fqan=d["fqan"],
    status="completed",
    cpu_count=d["cores"],
    memory=d["ram_mb"],
    disk=d["disk"],
    site_name=d["site"],
    compute_service=d["service"],
    benchmark_value=d["benchmark"],
    benchmark_type=d["benchmark_type"],
    user_dn=d["dn"],
    cloud_type=d["cloud_type"],
)
r.cpu_duration = d["cpu"]
print("APEL-cloud-message: v0.4")
print(r.ssm_message())
print("%%")
