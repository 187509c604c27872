"""CloudBackend for OpenStack through openstacksdk.

One keystoneauth session and one ``openstack.connection.Connection`` per backend, reused for
every call: keystoneauth caches the token until shortly before it expires and, on a 401,
re-authenticates once and repeats the request. Image, flavor and network names are resolved and
cached for ``reference_ttl`` seconds (sites replace images); an image id is given to Nova as it
is, without the image service.

Listing is ONE paginated ``GET /servers/detail`` with Nova's server-side name filter
``^jdirac-`` (a cheap narrowing only); ownership is decided by the owner metadata of each VM.
The listing's JSON is read directly through the SDK's compute proxy (1000 VMs: 0.4 s instead of
7 s of CPU building openstacksdk resources). ``listing_scope()`` names the project (auth URL,
the token's project id, compute endpoint) so that CEs of one project share a listing of the
installation's VMs (``list_installation_vms``, sharedlisting.py).

Errors: openstackerrors.py reads Nova's, Neutron's and Keystone's answers into typed CloudErrors
(messages scrubbed of the credential's secrets).

Over 400 lines and kept whole: it is one class, the CloudBackend contract on openstacksdk, whose
methods share one connection, one error translation and one reference cache; its other concerns
(errors, shared listing, image selection, identity) already live in their own modules.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from urllib.parse import quote

import openstack.connection
import openstack.exceptions as sdk_exceptions
from keystoneauth1 import plugin as ks_plugin
from keystoneauth1 import session as ks_session
from requests.adapters import DEFAULT_POOLSIZE as REQUESTS_POOL_SIZE

from JenniferDIRAC.Resources.Cloud.backend import (
    DEFAULT_REFERENCE_TTL,
    DELETE_THREADS,
    Changes,
    CloudBackend,
    ReferenceCache,
    delete_each,
)
from JenniferDIRAC.Resources.Cloud.imageselection import is_selection, parse_selection
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudError, NotFound, translated_errors
from JenniferDIRAC.Resources.Cloud.model import VM, Flavor, OwnerTags, Quota, VMSpec, VMState
from JenniferDIRAC.Resources.Cloud.openstackerrors import SDK_ERRORS, classify, translate_error
from JenniferDIRAC.Resources.Cloud.redaction import Redactor, install_http_log_filters
from JenniferDIRAC.Resources.Cloud.references import VM_NAME_PREFIX
from JenniferDIRAC.Resources.Cloud.resolving import Lookup
from JenniferDIRAC.Resources.Cloud.serverdeletes import ServerDeletes

#: Nova limits user_data to 65535 characters of base64, i.e. 49149 raw bytes.
NOVA_MAX_USER_DATA_BYTES = (65535 // 4) * 3
DEFAULT_TIMEOUT = 60.0  # seconds per HTTP request; Nova lists 1000 servers in ~10 s


def _by_id(get, ref: str) -> list:
    """[get(ref)], or [] when the cloud has no such id."""
    try:
        return [get(ref)]
    except sdk_exceptions.NotFoundException:
        return []


#: How references are looked up (resolving.Lookup). An image id goes to Nova as it is (Nova
#: refuses an unknown one at create): no image service needed, a project without Glance works.
_IMAGES: Lookup[str] = Lookup("image", by_name=lambda conn, name: [i.id for i in conn.image.images(name=name)])
_FLAVORS = Lookup(
    "flavor",
    by_name=lambda conn, name: [f for f in conn.compute.flavors(details=True) if f.name == name],
    by_id=lambda conn, ref: _by_id(conn.compute.get_flavor, ref),
)
_NETWORKS: Lookup[str] = Lookup(
    "network",
    by_name=lambda conn, name: [n.id for n in conn.network.networks(name=name)],
    by_id=lambda conn, ref: [n.id for n in _by_id(conn.network.get_network, ref)],
)

_STATES = {
    "BUILD": VMState.BUILD,
    "ACTIVE": VMState.ACTIVE,
    "REBOOT": VMState.ACTIVE,
    "HARD_REBOOT": VMState.ACTIVE,
    "PASSWORD": VMState.ACTIVE,
    "REBUILD": VMState.ACTIVE,
    "MIGRATING": VMState.ACTIVE,
    "RESIZE": VMState.ACTIVE,
    "VERIFY_RESIZE": VMState.ACTIVE,
    "REVERT_RESIZE": VMState.ACTIVE,
    "SHUTOFF": VMState.SHUTOFF,
    "STOPPED": VMState.SHUTOFF,
    "SHELVED": VMState.SHUTOFF,
    "SHELVED_OFFLOADED": VMState.SHUTOFF,
    "ERROR": VMState.ERROR,
    "DELETED": VMState.DELETING,
    "SOFT_DELETED": VMState.DELETING,
}

#: the ``status`` filter of every vm_state a full listing shows (Nova's twelve but deleted and
#: soft-deleted), each by its status without a task
LISTED_STATUSES = ("ACTIVE", "BUILD", "SHUTOFF", "VERIFY_RESIZE", "PAUSED", "SUSPENDED", "RESCUE", "ERROR",
                   "SHELVED", "SHELVED_OFFLOADED")

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _literal(name: str) -> str:
    """A Nova name regex matching `name` literally. Names are [A-Za-z0-9._-] (checked), so
    only the dot needs escaping; ``\\-`` is avoided as database regex dialects differ on it."""
    if not _NAME.match(name):
        raise ValueError(f"invalid VM name or prefix {name!r}")
    return name.replace(".", "\\.")


def _parse_time(value) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # OS-SRV-USG:launched_at has no zone; Nova times are UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _server_to_vm(body: dict) -> VM:
    """A VM from one server of Nova's ``/servers/detail`` JSON."""
    state = _STATES.get(str(body.get("status") or "").upper(), VMState.UNKNOWN)
    if str(body.get("OS-EXT-STS:task_state") or "").lower() == "deleting":
        state = VMState.DELETING
    fault = body.get("fault")
    fault_text = str(fault.get("message") or fault.get("code") or "") if isinstance(fault, dict) else ""
    fault_kind = None
    if isinstance(fault, dict):
        code = fault.get("code")
        fault_kind = classify(code if isinstance(code, int) else 0, fault_text, fault=True)
    flavor = body.get("flavor")
    flavor_id = ""
    if isinstance(flavor, dict):  # {"id": ...} before microversion 2.47, {"original_name": ...} after
        flavor_id = str(flavor.get("id") or flavor.get("original_name") or "")
    image = body.get("image")
    metadata = body.get("metadata")
    return VM(
        id=str(body.get("id") or ""),
        name=str(body.get("name") or ""),
        state=state,
        created=_parse_time(body.get("created")),
        updated=_parse_time(body.get("updated")),
        launched=_parse_time(body.get("OS-SRV-USG:launched_at")),
        metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {},
        fault=fault_text,
        fault_kind=fault_kind,
        flavor_id=flavor_id,
        image_id=str(image.get("id") or "") if isinstance(image, dict) else "",
    )


class OpenStackBackend(CloudBackend):
    """OpenStack (Nova, Glance, Neutron) through one openstacksdk Connection."""

    def __init__(
        self,
        *,
        auth: ks_plugin.BaseAuthPlugin,
        region_name: str | None = None,
        interface: str = "public",
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        secrets: Sequence[str] = (),
        max_user_data_bytes: int = NOVA_MAX_USER_DATA_BYTES,
        name_prefix: str = VM_NAME_PREFIX,
        compute_endpoint_override: str | None = None,
        compute_api_version: str | None = None,
        auth_url_option: str = "AuthURL",
        reference_ttl: float = DEFAULT_REFERENCE_TTL,
        max_delete_threads: int = DELETE_THREADS,
    ) -> None:
        install_http_log_filters()
        self.max_delete_threads = max(1, int(max_delete_threads))
        self._auth_url_option = auth_url_option
        self.max_user_data_bytes = max_user_data_bytes
        self._name_prefix = name_prefix
        self._redact = Redactor(secrets)
        exchange = getattr(auth, "exchange", None)  # OIDC refresh-token plugin
        if exchange is not None:
            self._redact.add(exchange.secrets())
            self._exchange = exchange
        else:
            self._exchange = None
        self.session = ks_session.Session(auth=auth, verify=verify, cert=cert, timeout=timeout)
        if self.max_delete_threads > REQUESTS_POOL_SIZE:
            # requests keeps 10 connections per host: more concurrent DELETEs would each open
            # (and TLS-handshake) a connection that is then thrown away
            adapter = ks_session.TCPKeepAliveAdapter(pool_maxsize=self.max_delete_threads)
            for scheme in ("https://", "http://"):
                self.session.session.mount(scheme, adapter)
        overrides = {}
        if compute_endpoint_override:
            overrides["compute_endpoint_override"] = compute_endpoint_override
        if compute_api_version:
            overrides["compute_api_version"] = compute_api_version
        self.connection = openstack.connection.Connection(
            session=self.session,
            region_name=region_name,
            interface=interface,
            **overrides,
        )
        self._images: ReferenceCache[str] = ReferenceCache(reference_ttl)
        self._flavors: ReferenceCache[Flavor] = ReferenceCache(reference_ttl)
        self._networks: ReferenceCache[str] = ReferenceCache(reference_ttl)
        self._scope: tuple[str, ...] | None = None
        self._server_deletes: ServerDeletes | None = None

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[openstack.connection.Connection]:
        """The connection for one call (`what` it does), its SDK errors translated."""
        with translated_errors(what, self._cloud_error, SDK_ERRORS):
            yield self.connection

    def _cloud_error(self, exc: Exception, what: str) -> CloudError:
        if self._exchange is not None:  # a rotated refresh token / new access token
            self._redact.add(self._exchange.secrets())
        error = translate_error(exc, what, self._redact, self._auth_url_option)
        if isinstance(error, CloudAuthError):
            # a revoked or expired token: the next call authenticates again from the credential
            with contextlib.suppress(Exception):
                self.session.auth.invalidate()
            if self._server_deletes is not None:
                self._server_deletes.forget_token()
        return error

    # --- VMs --------------------------------------------------------------------------------
    def _servers(self, what: str, **query: str) -> list[VM]:
        """Every server of ``GET /servers/detail?<query>`` as a VM."""
        return [_server_to_vm(server) for server in self._server_bodies(what, **query)]

    def _server_bodies(self, what: str, detail: bool = True, **query: str | list[str]) -> list[dict]:
        """Every server of ``GET /servers/detail?<query>`` (`detail` False: ``GET /servers``, the
        id and name of each), following Nova's next links.

        The JSON is read directly: building openstacksdk Server resources costs ~7 ms of CPU
        per server, 300 times the HTTP itself on a loopback cloud. The SDK's compute proxy still
        does the request (version discovery, token, re-authentication)."""
        url, params = "/servers/detail" if detail else "/servers", dict(query)
        vms: list[dict] = []
        seen_pages: set[str] = set()
        with self._calling(what):
            compute = self.connection.compute
            while True:
                response = compute.get(url, params=params)
                sdk_exceptions.raise_from_response(response)
                try:
                    body = response.json()
                except ValueError:  # requests.JSONDecodeError: a response cut short
                    raise CloudError(f"{what}: the compute service answered with invalid JSON") from None
                servers = body.get("servers") if isinstance(body, dict) else None
                if not isinstance(servers, list):
                    raise CloudError(f"{what}: the compute service answered without a server list")
                vms.extend(server for server in servers if isinstance(server, dict))
                next_url = next(
                    (link.get("href") for link in body.get("servers_links") or []
                     if isinstance(link, dict) and link.get("rel") == "next"),
                    None,
                )
                if not servers or not next_url:
                    return vms
                if next_url in seen_pages:
                    raise CloudError(f"{what}: the compute service repeats the page {next_url}")
                seen_pages.add(next_url)
                url, params = next_url, {}

    def list_vms(self, owner: OwnerTags) -> list[VM]:
        vms = self._servers("listing servers", name=f"^{_literal(self._name_prefix)}")
        return [self._with_flavor_id(vm) for vm in vms if owner.owns(vm.owner)]

    def list_installation_vms(self, installation: str) -> list[VM]:
        vms = self._servers("listing servers", name=f"^{_literal(self._name_prefix)}")
        owned = (vm for vm in vms if vm.owner is not None and vm.owner.installation == installation)
        return [self._with_flavor_id(vm) for vm in owned]

    def list_project_vms(self) -> list[VM]:
        vms = self._servers("listing servers", name=f"^{_literal(self._name_prefix)}")
        return [vm for vm in vms if vm.owner is not None]

    def list_installation_changes(self, installation: str, since: datetime, deleted_apart: bool = False) -> Changes:
        """Nova's ``changes-since``: servers updated at or after `since`, with the deleted ones
        (status DELETED or SOFT_DELETED, which a full listing leaves out; one still deleting is
        listed as in a full listing, with its task state).

        `deleted_apart`: in two requests, so that deleted servers cost their id only (Nova
        builds a detailed server of a deleted one as of a live one): first the ids and names
        of every changed server (``GET /servers``), then the details of those in a state a
        full listing shows (the ``status`` filter of every vm_state but deleted and
        soft-deleted; deleted ones alone only an admin may ask for). A server of the first
        answer missing from the second is gone: deletion is final, and one changed between
        the two answers is in the second whatever its state."""
        stamp = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # Nova: whole seconds
        query = {"name": f"^{_literal(self._name_prefix)}", "changes-since": stamp}
        changed: set[str] = set()
        if deleted_apart:
            changed = {str(body.get("id")) for body in self._server_bodies(
                "listing changed servers", detail=False, **query)}
            query["status"] = list(LISTED_STATUSES)
        changes = Changes()
        for body in self._server_bodies("listing changed servers", **query):
            vm = _server_to_vm(body)
            changed.discard(vm.id)
            if str(body.get("status") or "").upper() in ("DELETED", "SOFT_DELETED"):
                changes.gone.add(vm.id)
            elif vm.owner is not None and vm.owner.installation == installation:
                changes.vms.append(self._with_flavor_id(vm))
            else:  # no longer ours (its metadata changed): gone from this installation's view
                changes.gone.add(vm.id)
        changes.gone |= changed
        return changes

    def listing_scope(self) -> tuple[str, ...]:
        """(auth URL, the token's project id, compute endpoint): the endpoint differs per region
        and per compute override, the project id is what Nova lists servers of."""
        if self._scope is None:
            with self._calling("identifying the project"):
                project_id = self.session.get_project_id()
                endpoint = self.connection.compute.get_endpoint()
            auth_url = str(getattr(self.session.auth, "auth_url", "") or "")
            self._scope = (
                "openstack", auth_url.rstrip("/"), str(project_id or ""), str(endpoint or "").rstrip("/")
            )
        return self._scope

    def share_discovery(self, cache: dict) -> None:
        """keystoneauth's discovery cache (version documents by URL, what Session's
        ``discovery_cache`` argument shares between sessions), swapped in for this session's:
        the first SDK call of each CE's connection that negotiates a microversion (a flavor or
        quota read) asks the compute endpoint's version document (``GET /v2.1``), once per
        project with it."""
        own = self.session._discovery_cache
        if own is not cache:
            for url, document in own.items():
                cache.setdefault(url, document)
            self.session._discovery_cache = cache

    def _with_flavor_id(self, vm: VM) -> VM:
        # Nova >= 2.47 embeds the flavor without its id: give the id when we know the flavor
        for flavor in self._flavors.values():
            if vm.flavor_id == flavor.name:
                vm.flavor_id = flavor.id
                break
        return vm

    def find_vm_by_name(self, name: str, owner: OwnerTags) -> VM | None:
        if not _NAME.match(name):
            raise ValueError(f"invalid VM name {name!r}")
        for vm in self._servers(f"looking up server {name}", name=f"^{_literal(name)}$"):
            if vm.name == name and owner.owns(vm.owner):
                return self._with_flavor_id(vm)
        return None

    def create_vm(self, spec: VMSpec) -> VM:
        self.check_user_data_size(spec)
        attrs: dict = {
            "name": spec.name,
            "image_id": spec.image_id,
            "flavor_id": spec.flavor_id,
            "metadata": dict(spec.metadata),
            "user_data": base64.b64encode(spec.user_data).decode("ascii"),
            # Nova (>= 2.37) needs networks; "auto" = the project's network, as before 2.37
            "networks": [{"uuid": n} for n in spec.network_ids] if spec.network_ids else "auto",
        }
        if spec.key_name:
            attrs["key_name"] = spec.key_name
        if spec.security_groups:
            attrs["security_groups"] = [{"name": g} for g in spec.security_groups]
        if spec.availability_zone:
            attrs["availability_zone"] = spec.availability_zone
        if spec.config_drive:
            attrs["config_drive"] = True
        with self._calling(f"creating server {spec.name}"):
            server = self.connection.compute.create_server(**attrs)
        return VM(
            id=server.id,
            name=spec.name,
            state=VMState.BUILD,
            metadata=dict(spec.metadata),
            flavor_id=spec.flavor_id,
            image_id=spec.image_id,
        )

    def delete_vms(self, vm_ids: list[str]) -> dict[str, str]:
        """Deletes sent `max_delete_threads` (CE option MaxDeleteThreads) at once, each
        ``DELETE /servers/{id}`` on the session's connections with its token (serverdeletes.py:
        a third of the SDK's CPU per DELETE); a 401 or an unusual answer goes again through the
        SDK's compute proxy, whose keystoneauth re-authenticates. The call is the same in every
        microversion: no version is negotiated."""
        def delete_one(vm_id: str) -> str | None:
            try:
                with self._calling(f"deleting server {vm_id}"):
                    deletes = self._deletes()
                    if deletes is not None and deletes.delete(vm_id):
                        return None
                    response = self.connection.compute.delete(f"/servers/{quote(vm_id, safe='')}")
                    if response.status_code != 404:  # already gone: what the delete wanted
                        sdk_exceptions.raise_from_response(response)
            except NotFound:
                return None
            except CloudError as exc:
                return str(exc)
            return None

        return delete_each(list(vm_ids), delete_one, self.max_delete_threads)

    def _deletes(self) -> ServerDeletes | None:
        """The DELETE sender at the compute endpoint the SDK's proxy uses (made once; None
        without an endpoint: the SDK's path then says why)."""
        if self._server_deletes is None:
            endpoint = self.listing_scope()[3]
            if not endpoint:
                return None
            self._server_deletes = ServerDeletes(self.session, endpoint)
        return self._server_deletes

    def console_log(self, vm_id: str) -> str:
        with self._calling(f"reading the console of server {vm_id}"):
            result = self.connection.compute.get_server_console_output(vm_id)
        output = result.get("output") if isinstance(result, dict) else None
        return output or ""

    def quota(self) -> Quota:
        with self._calling("reading limits"):
            absolute = self.connection.compute.get_limits().absolute

        def number(value) -> int | None:
            return None if value is None else int(value)

        return Quota(
            max_instances=number(absolute.instances),
            used_instances=number(absolute.instances_used) or 0,
            max_cores=number(absolute.total_cores),
            used_cores=number(absolute.total_cores_used) or 0,
            max_ram_mb=number(absolute.total_ram),
            used_ram_mb=number(absolute.total_ram_used) or 0,
        )

    # --- references -------------------------------------------------------------------------
    def resolve_image(self, ref: str) -> str:
        return self._images.get(ref, self._find_image)

    def _find_image(self, ref: str) -> str:
        if is_selection(ref):
            return self._select_image(parse_selection(ref))
        return _IMAGES.find(ref, self._calling)

    def _select_image(self, selection) -> str:
        """The newest active image matching `selection` (tags filtered by Glance, properties here:
        openstacksdk takes no arbitrary property filter)."""
        with self._calling("selecting an image"):
            query = {"status": "active", "sort_key": "created_at", "sort_dir": "desc"}
            if selection.tags:
                query["tag"] = list(selection.tags)
            found = []
            for image in self.connection.image.images(**query):
                attributes = {**(image.properties or {}), **{k: v for k, v in image.to_dict().items() if v is not None}}
                if selection.matches(attributes, image.tags or []):
                    found.append((image.created_at or "", image.id))
        if not found:
            raise NotFound(f"no active image matches {selection}")
        return max(found)[1]

    def resolve_flavor(self, ref: str) -> Flavor:
        return self._flavors.get(ref, self._find_flavor)

    def _find_flavor(self, ref: str) -> Flavor:
        flavor = _FLAVORS.find(ref, self._calling)
        return Flavor(id=flavor.id, name=flavor.name or "", vcpus=int(flavor.vcpus or 0),
                      ram_mb=int(flavor.ram or 0))

    def flavor_properties(self, ref: str) -> dict[str, str]:
        flavor = self.resolve_flavor(ref)
        with self._calling(f"reading the extra specs of flavor {ref}"):
            found = self.connection.compute.fetch_flavor_extra_specs(flavor.id)
        return {str(key): str(value) for key, value in (found.extra_specs or {}).items()}

    def resolve_networks(self, refs: list[str]) -> list[str]:
        return [self._networks.get(ref, lambda r: _NETWORKS.find(r, self._calling)) for ref in refs]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):
            self.session.session.close()
