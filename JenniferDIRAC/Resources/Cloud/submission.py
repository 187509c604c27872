"""Create a batch of VMs concurrently, without duplicates and without leaving half-built VMs.

Each VM has a unique name chosen before the create call. When the outcome of a create is
uncertain (the cloud timed out or failed after the request may have been accepted), the VM is
looked up by that name before anything is retried: if it exists, it was created. A VM whose
create was sent and never answered (CloudNoAnswer), or whose lookup failed, is uncertain,
never "not created": the create may land after the lookup. If a VM was
created again after such a lookup found nothing, one listing after the batch catches a late twin
of the same name and deletes it. A VM that comes back from a create in ERROR is deleted and
counted as a failure. A full project stops the batch.

Nothing that fails beside a VM loses it: an unexpected exception in a create, a lookup, a
delete or the twin listing (a garbled response, a backend bug) makes that one outcome uncertain
or failed, never the batch; every VM that exists is in ``Submission.created``. Each failure
carries the FailureKind the backend read from the cloud's answer (``Outcome.kind``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from JenniferDIRAC.Resources.Cloud.backend import CloudBackend
from JenniferDIRAC.Resources.Cloud.errors import CloudError, CloudNoAnswer, CloudUnreachable, FailureKind, QuotaExceeded
from JenniferDIRAC.Resources.Cloud.model import VM, OwnerTags, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.resolving import StaleReference


@dataclass
class Outcome:
    spec: VMSpec
    vm: VM | None = None
    error: str = ""
    #: what the failure means (None while the VM exists or nothing failed)
    kind: FailureKind | None = None
    #: "image", "flavor" or "network" when the cloud said that resolved id no longer exists
    stale: str = ""
    #: the VM may exist but could not be confirmed: a lookup failed, or a create went unanswered
    uncertain: bool = False
    #: a create of this name was sent and never answered and no lookup found the VM: it may
    #: land later (the CE records it "create uncertain" and returns its pilot)
    unanswered: bool = False
    #: created again after an uncertain create: a late twin may appear
    recreated: bool = False

    @property
    def quota_exceeded(self) -> bool:
        return self.kind is FailureKind.QUOTA


@dataclass
class Submission:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def created(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.vm is not None]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.vm is None]

    @property
    def quota_exceeded(self) -> bool:
        return any(o.quota_exceeded for o in self.outcomes)


class _Creator:
    def __init__(self, backend: CloudBackend, owner: OwnerTags, attempts: int,
                 retry_delay: float, sleep: Callable[[float], None]):
        self.backend = backend
        self.owner = owner
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.sleep = sleep
        self.quota_full = threading.Event()
        self.quota_error = ""  # the cloud's refusal, in the reason of the creates not sent after it

    def lookup(self, outcome: Outcome) -> bool | None:
        """True: the VM exists (outcome filled); False: it does not; None: cannot tell."""
        try:
            vm = self.backend.find_vm_by_name(outcome.spec.name, self.owner)
        except CloudError as exc:
            outcome.error, outcome.kind = f"lookup after an uncertain create failed: {exc}", exc.kind
            return None
        except Exception as exc:  # noqa: BLE001 - a garbled answer (JSONDecodeError...) is "cannot tell"
            outcome.error = f"lookup after an uncertain create failed: unexpected {type(exc).__name__}"
            outcome.kind = FailureKind.CLOUD_FAULT
            return None
        if vm is None:
            return False
        outcome.vm = vm
        return True

    def create(self, spec: VMSpec) -> Outcome:
        outcome = Outcome(spec)
        uncertain = False
        unanswered = False  # a create was sent and no answer came: it may still land
        for attempt in range(self.attempts):
            if self.quota_full.is_set():
                outcome.error = outcome.error or f"not attempted: the project quota is full ({self.quota_error})"
                outcome.kind = FailureKind.QUOTA
                break
            if attempt:
                self.sleep(self.retry_delay * attempt)
            if uncertain:
                found = self.lookup(outcome)
                if found:
                    return self._checked(outcome)
                if found is None:
                    continue  # still cannot tell: never create a second VM with this name blind
                uncertain, outcome.recreated = False, True
            try:
                outcome.vm = self.backend.create_vm(spec)
            except QuotaExceeded as exc:
                outcome.error, outcome.kind = str(exc), exc.kind
                self.quota_error = outcome.error  # before the event: a create that sees it reads this
                self.quota_full.set()
                return outcome
            except CloudUnreachable as exc:
                outcome.error, outcome.kind, uncertain = str(exc), exc.kind, True
                unanswered = unanswered or isinstance(exc, CloudNoAnswer)
                continue
            except StaleReference as exc:
                outcome.error, outcome.kind, outcome.stale = str(exc), exc.kind, exc.what
                return outcome
            except CloudError as exc:
                outcome.error, outcome.kind = str(exc), exc.kind
                return outcome
            except Exception as exc:  # noqa: BLE001 - a backend bug must not lose the batch
                outcome.error = f"unexpected {type(exc).__name__} from the backend"
                # an answer it could not read (a garbled 202) may hide a VM that exists
                outcome.kind, uncertain, unanswered = FailureKind.CLOUD_FAULT, True, True
                continue
            return self._checked(outcome)
        if uncertain:
            found = self.lookup(outcome)
            if found:
                return self._checked(outcome)
            # a create sent without an answer may land after a lookup that found nothing
            # (Nova still handling the POST; LocalCloud's lost_response): uncertain, not failed
            outcome.uncertain = found is None or unanswered
            outcome.unanswered = unanswered
        return outcome

    def safe_create(self, spec: VMSpec) -> Outcome:
        """create(spec), never raising: one VM's surprise must not lose the batch's outcomes."""
        try:
            return self.create(spec)
        except Exception as exc:  # noqa: BLE001 - the VM may exist: the VMDirector reconciles it
            return Outcome(spec, error=f"unexpected {type(exc).__name__} while creating",
                           kind=FailureKind.CLOUD_FAULT, uncertain=True)

    def _checked(self, outcome: Outcome) -> Outcome:
        vm = outcome.vm
        if vm is not None and vm.state is VMState.ERROR:
            outcome.vm = None
            outcome.kind = vm.fault_kind or FailureKind.CLOUD_FAULT
            outcome.error = f"VM {vm.name} went to ERROR at creation: {vm.fault or 'no fault given'}"
            try:
                errors = self.backend.delete_vms([vm.id])
            except Exception as exc:  # noqa: BLE001 - the VMDirector deletes it later
                errors = {vm.id: str(exc) if isinstance(exc, CloudError) else type(exc).__name__}
            if errors:
                outcome.error += f" (and deleting it failed: {errors.get(vm.id, 'unknown error')})"
        return outcome


def create_vms(
    backend: CloudBackend,
    specs: Sequence[VMSpec],
    owner: OwnerTags,
    max_threads: int = 8,
    attempts: int = 3,
    retry_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Submission:
    """Create every spec (at most `max_threads` at once). Outcomes are in the order of `specs`."""
    if not specs:
        return Submission()
    creator = _Creator(backend, owner, attempts, retry_delay, sleep)
    with ThreadPoolExecutor(max_workers=max(1, min(max_threads, len(specs))), thread_name_prefix="vm-create") as pool:
        outcomes = list(pool.map(creator.safe_create, specs))
    _delete_late_twins(backend, owner, outcomes)
    return Submission(outcomes)


def _delete_late_twins(backend: CloudBackend, owner: OwnerTags, outcomes: list[Outcome]) -> None:
    """Delete VMs that share the name of a recreated VM but are not the one returned."""
    kept = {o.vm.name: o.vm.id for o in outcomes if o.recreated and o.vm is not None}
    if not kept:
        return
    try:
        twins = [vm.id for vm in backend.list_vms(owner) if vm.name in kept and vm.id != kept[vm.name]]
        if twins:
            backend.delete_vms(twins)
    except Exception:  # noqa: BLE001 - the VM director removes untracked VMs
        pass
