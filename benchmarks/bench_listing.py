"""Cost of one OpenStackBackend.list_vms against LocalCloud for N owned VMs (plus 10 % VMs of
another installation): wall time and the requests LocalCloud counted::

    .venv/bin/python benchmarks/bench_listing.py            # N = 100, 1000, 3000
    .venv/bin/python benchmarks/bench_listing.py 50 500
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keystoneauth1.identity import v3  # noqa: E402

from JenniferLocalCloud import LocalCloud  # noqa: E402
from JenniferDIRAC.Resources.Cloud.model import OwnerTags  # noqa: E402
from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend  # noqa: E402
from JenniferDIRAC.Resources.Cloud.references import make_vm_name  # noqa: E402


def main(sizes: list[int]) -> None:
    warnings.simplefilter("ignore")
    owner, other = OwnerTags("bench", "ce.bench"), OwnerTags("elsewhere", "ce.bench")
    with LocalCloud() as cloud:
        c = cloud.credentials
        backend = OpenStackBackend(
            auth=v3.Password(auth_url=c.auth_url, username=c.username, password=c.password,
                             user_domain_name=c.domain_name, project_name=c.project_name,
                             project_domain_name=c.domain_name),
            region_name=c.region_name, secrets=[c.password])
        print(f"{'owned VMs':>10} {'listed':>8} {'seconds':>8} {'requests':>9}")
        owned = 0
        for n in sorted(sizes):
            while owned < n:
                cloud.compute.add_server(make_vm_name(), cloud.project_id, metadata=owner.to_metadata())
                if owned % 10 == 0:
                    cloud.compute.add_server(make_vm_name(), cloud.project_id, metadata=other.to_metadata())
                owned += 1
            backend.list_vms(owner)  # warm: token and version discovery
            cloud.counters.reset()
            start = time.perf_counter()
            vms = backend.list_vms(owner)
            elapsed = time.perf_counter() - start
            print(f"{n:>10} {len(vms):>8} {elapsed:>8.2f} {cloud.counters.total():>9}")
        backend.close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 3000])
