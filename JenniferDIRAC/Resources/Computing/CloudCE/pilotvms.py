"""What VM the CE creates for a pilot: its stamp, its endpoint token (and sealed bootstrap), the
user data telling its pilot the flavor's cores, the owner tags, and where it goes (image, flavor,
networks, zone), as one ``VMSpec``. The same design puts a VM refused for capacity on the next
flavor/zone (``on_flavor``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.model import Flavor, OwnerTags, VMSpec
from JenniferDIRAC.Resources.Cloud.references import make_stamp, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext
from JenniferDIRAC.Resources.Computing.CloudCE.pilotdata import cores_env


@dataclass(frozen=True)
class PilotVM:
    """One pilot's VM before it is created."""

    spec: VMSpec
    stamp: str
    context: PilotContext  # what its user data was rendered from
    sealed: bytes | None  # its sealed bootstrap for VMDB (None: the wrapper is in its user data)


@dataclass(frozen=True)
class PilotVMDesign:
    """What the VMs of one submission share; ``vm(name, ...)`` makes one pilot's VM."""

    config: CloudCEConfig
    owner: OwnerTags  # the CE's (with its queue); each VM adds its stamp
    wrapper: str  # the pilot wrapper the SiteDirector gave
    endpoint_url: str  # "" when the VMs report nowhere
    tokens: object | None  # the endpoint's TokenAuthority, None without an endpoint
    bootstrap: bool  # the wrapper is sealed in VMDB and fetched once, not put in user data
    render: Callable[[PilotContext], bytes]  # a VM's user data within the cloud's limit
    seal: Callable[..., tuple[bytes, str]]  # (sealed bootstrap, one-time token): pilotdata.seal_bootstrap

    def vm(self, name: str, image: str, flavor: Flavor, networks: list[str], zone: str) -> PilotVM:
        config = self.config
        stamp = make_stamp()
        token = self.tokens.issue_for_vm(name, config.context_max_lifetime) if self.tokens else ""
        sealed = None
        if self.bootstrap:
            sealed, token = self.seal(self.tokens, name, token, self.wrapper)
        context = PilotContext(
            pilot_reference=pilot_reference(self.owner.ce, name),
            pilot_stamp=stamp,
            wrapper=self.wrapper,
            vm_name=name,
            ce_name=self.owner.ce,
            site=config.site,
            vo=config.vo,
            max_lifetime=config.context_max_lifetime,
            endpoint_url=self.endpoint_url,
            endpoint_token=token,
            extra_packages=config.context_ext_packages,
            bootstrap=self.bootstrap,
            extra_env=cores_env(flavor),
        )
        spec = VMSpec(
            name=name,
            image_id=image,
            flavor_id=flavor.id,
            user_data=self.render(context),
            metadata={**config.extra_metadata, **dataclasses.replace(self.owner, stamp=stamp).to_metadata()},
            network_ids=list(networks),
            key_name=config.ssh_key,
            security_groups=list(config.security_groups),
            availability_zone=zone,
            config_drive=config.config_drive,
        )
        return PilotVM(spec, stamp, context, sealed)

    def on_flavor(self, vm: PilotVM, spec: VMSpec, flavor: Flavor, zone: str) -> VMSpec:
        """`spec`, the last create of `vm` (refused: none was created), on another flavor and zone,
        its pilot told that flavor's cores."""
        context = dataclasses.replace(vm.context, extra_env=cores_env(flavor))
        return dataclasses.replace(spec, flavor_id=flavor.id, availability_zone=zone, user_data=self.render(context))
