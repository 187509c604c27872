"""The creates of one submission (submission.create_vms: concurrent, never twice blind), and the
two second chances a refused create gets with the same VM names (none was created):

- the cloud said a resolved image / flavor / network id no longer exists: resolve again once and
  create those VMs with the new ids;
- the cloud had no capacity for the flavor/zone: the next preferred (flavor, zone), each VM with
  the cores of its flavor in its user data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import CloudError, FailureKind
from JenniferDIRAC.Resources.Cloud.model import Flavor, VMSpec
from JenniferDIRAC.Resources.Cloud.submission import Submission, create_vms
from JenniferDIRAC.Resources.Computing.CloudCE import resolution
from JenniferDIRAC.Resources.Computing.CloudCE.pilotvms import PilotVM, PilotVMDesign
from JenniferDIRAC.Resources.Computing.CloudCE.placements import Placements


@dataclass
class Creation:
    backend: CloudBackend
    config: CloudCEConfig
    log: object
    placements: Placements
    #: seconds before retry n of a failed create is n * retry_delay
    retry_delay: float

    def resolve(self) -> tuple[str, Flavor, list[str]]:
        """Image id, flavor and network ids of the next VMs."""
        return resolution.resolve_all(
            self.backend, self.config, self.placements.next_flavor(self.backend, self.config)
        )

    def create(self, specs: list[VMSpec]) -> Submission:
        config = self.config
        return create_vms(
            self.backend,
            specs,
            config.owner(),
            max_threads=config.max_submit_threads,
            attempts=config.create_attempts,
            retry_delay=self.retry_delay,
        )

    def _again(self, submission: Submission, retry: list[VMSpec]) -> Submission:
        """`submission` with the outcomes of creating `retry` in place of the earlier ones."""
        again = {o.spec.name: o for o in self.create(retry).outcomes}
        return Submission([again.get(o.spec.name, o) for o in submission.outcomes])

    def retry_with_fresh_ids(self, submission: Submission, stale: set[str]) -> Submission:
        """The cloud refused creates because a resolved id no longer exists: resolve again once
        and, if the ids changed, create those VMs once more (same names: none was created)."""
        resolution.forget_stale(self.backend, self.config, stale)
        self.log.info("Cloud ids no longer exist, resolving again", f"{self.config.ce_name}: {', '.join(sorted(stale))}")
        try:
            image, flavor, networks = self.resolve()
        except CloudError as exc:
            self.log.warn("Resolving again failed", f"{self.config.ce_name}: {exc}")
            return submission
        retry = {}
        for outcome in submission.failed:
            spec = outcome.spec
            if not outcome.stale:
                continue
            fresh = dataclasses.replace(spec, image_id=image, flavor_id=flavor.id, network_ids=list(networks))
            if (fresh.image_id, fresh.flavor_id, fresh.network_ids) != (spec.image_id, spec.flavor_id, spec.network_ids):
                retry[spec.name] = fresh
        if not retry:
            return submission
        return self._again(submission, list(retry.values()))

    def fall_back(self, submission: Submission, placements: list, flavor: Flavor, design: PilotVMDesign,
                  vms: dict[str, PilotVM]):
        """Creates the cloud refused for capacity go to the next flavor/zone (same names: none
        was created), each with the cores of its flavor in its user data. Returns the submission
        and {VM name: the flavor it was created with}."""
        flavors = {o.spec.name: flavor for o in submission.outcomes}
        where = placements[0]
        for following in placements[1:] + [None]:
            full = [o for o in submission.failed if o.kind is FailureKind.CAPACITY and not o.uncertain]
            if not full:
                break
            self.placements.no_capacity(self.backend, self.config, where, full[0].error)
            if following is None:
                break
            try:
                flavor = resolution.resolve_flavor(self.backend, following.flavor)
            except CloudError as exc:
                self.log.warn("Fallback flavor not resolved", f"{self.config.ce_name}: {following.flavor}: {exc}")
                continue
            retry = []
            for outcome in full:
                name = outcome.spec.name
                retry.append(design.on_flavor(vms[name], outcome.spec, flavor, following.zone))
                flavors[name] = flavor
                self.placements.placed_on[name] = following
            submission = self._again(submission, retry)
            where = following
        return submission, flavors
