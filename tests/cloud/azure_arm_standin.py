"""A loopback stand-in for Azure Resource Manager and Azure AD, answering with Azure's recorded
responses (azure_arm_fixtures/, from apache-libcloud's source distribution) as templates.

It keeps what was created (VMs, NICs) so listings, InstanceViews and deletes answer about it,
records every request, and can answer the next VM create with an error body.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from werkzeug.wrappers import Request, Response

FIXTURES = Path(__file__).with_name("azure_arm_fixtures")
TENANT = "77777777-7777-7777-7777-777777777777"
SUBSCRIPTION = "99999999-9999-9999-9999-999999999999"
CLIENT_ID = "55555555-5555-5555-5555-555555555555"
CLIENT_SECRET = "azure-client-secret-value"

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _json(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _arm_error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


class AzureStandIn:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token = fixture(f"_{TENANT.replace('-', '_')}_oauth2_token")
        self.vms: dict[str, dict] = {}  # id -> VM document as Azure returns it
        self.power: dict[str, str] = {}  # id -> PowerState code suffix
        self.nics: dict[str, dict] = {}
        self.vm_puts: list[dict] = []  # request bodies of VM creates
        self.token_requests = 0
        self.requests: list[tuple[str, str]] = []
        self.fail_next_create: tuple[int, str, str] | None = None
        self.instance_view_missing = False  # Azure may not have an InstanceView right after a create

    # --- routing -------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.requests.append((request.method, request.path))
            response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "POST" and re.fullmatch(r"/(?P<tenant>[^/]+)/oauth2/token", path):
            return self._token(request, path.split("/")[1])
        if request.headers.get("Authorization") != f"Bearer {self.token['access_token']}":
            return _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if re.fullmatch(_SUB + r"/providers/Microsoft\.Compute/locations/eastus/vmSizes", path):
            return _json(fixture("_subscriptions_99999999_providers_Microsoft_Compute_locations_eastus_vmSizes"))
        if re.fullmatch(_SUB + r"/providers/Microsoft\.Network/virtualnetworks", path):
            return _json(fixture("_subscriptions_99999999_providers_Microsoft_Network_virtualnetworks"))
        if match := re.fullmatch(_RG + r"/providers/Microsoft\.Network/networkInterfaces/(?P<name>[^/]+)", path):
            return self._nic(request, match.group("name"))
        if re.fullmatch(_RG + r"/providers/Microsoft\.Compute/virtualMachines", path) or (
                "$skiptoken" in request.args and path.endswith("/virtualMachines")):
            return self._list(request)
        if match := re.fullmatch(_RG + r"/providers/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)/InstanceView", path):
            return self._instance_view(path.rsplit("/", 1)[0], match.group("name"))
        if match := re.fullmatch(_RG + r"/providers/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)", path):
            return self._vm(request, match.group("rg"), match.group("name"))
        return _arm_error(404, "InvalidResourceType", f"no stand-in for {method} {path}")

    # --- Azure AD --------------------------------------------------------------------------
    def _token(self, request: Request, tenant: str) -> Response:
        self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        if tenant != TENANT or form.get("grant_type") != "client_credentials":
            return _json({"error": "invalid_request", "error_description": "AADSTS900144: bad request"}, 400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return _json({"error": "invalid_client", "error_description":
                          "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
                          "request is the client secret value, not the client secret ID."}, 401)
        return _json(self.token)

    # --- network interfaces ----------------------------------------------------------------
    def _nic(self, request: Request, name: str) -> Response:
        nic_id = request.path
        if request.method == "DELETE":
            return Response(status=200 if self.nics.pop(nic_id, None) else 204)
        if request.method == "GET":
            return _json(self.nics[nic_id]) if nic_id in self.nics else _arm_error(404, "NotFound", name)
        body = request.get_json()
        nic = fixture("_subscriptions_99999999_resourceGroups_000000_providers_Microsoft_Network_networkInterfaces_test_node_1_nic")
        nic.update(name=name, id=nic_id, location=body["location"], tags=body.get("tags", {}))
        config = nic["properties"]["ipConfigurations"][0]
        config["id"] = f"{nic_id}/ipConfigurations/myip1"
        config["properties"]["subnet"] = body["properties"]["ipConfigurations"][0]["properties"]["subnet"]
        nic["properties"].pop("virtualMachine", None)
        self.nics[nic_id] = nic
        return _json(nic, 201)

    # --- virtual machines ------------------------------------------------------------------
    def _vm(self, request: Request, rg: str, name: str) -> Response:
        vm_id = request.path
        if request.method == "GET":
            if vm_id in self.vms:
                return _json(self.vms[vm_id])
            return _arm_error(404, "ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachines/{name}' "
                                                       f"under resource group '{rg}' was not found.")
        if request.method == "DELETE":
            vm = self.vms.pop(vm_id, None)
            if vm is None:
                return Response(status=204)
            for nic in vm["properties"]["networkProfile"]["networkInterfaces"]:
                if nic.get("properties", {}).get("deleteOption") == "Delete":
                    self.nics.pop(nic["id"], None)
            return Response(status=202)
        body = request.get_json()
        self.vm_puts.append(copy.deepcopy(body))
        if self.fail_next_create is not None:
            status, code, message = self.fail_next_create
            self.fail_next_create = None
            return _arm_error(status, code, message)
        vm = fixture("_subscriptions_99999999_resourceGroups_000000_providers_Microsoft_Compute_virtualMachines_test_node_1")
        properties = copy.deepcopy(body["properties"])
        for secret in ("customData", "adminPassword"):  # Azure never returns them
            properties["osProfile"].pop(secret, None)
        properties.update(vmId=str(uuid.uuid4()), provisioningState="Creating")
        vm.update(id=vm_id, name=name, location=body["location"], tags=body.get("tags", {}), properties=properties)
        self.vms[vm_id] = vm
        self.power[vm_id] = "running"
        return _json(vm, 201)

    def _instance_view(self, vm_id: str, name: str) -> Response:
        if vm_id not in self.vms or self.instance_view_missing:
            return _arm_error(404, "ResourceNotFound", name)
        view = fixture("_subscriptions_99999999_resourceGroups_000000_providers_Microsoft_Compute_virtualMachines_test_node_1_InstanceView")
        for status in view["statuses"]:
            if status["code"].startswith("PowerState/"):
                status["code"] = f"PowerState/{self.power[vm_id]}"
        return _json(view)

    def _list(self, request: Request) -> Response:
        if "$skiptoken" not in request.args:
            # Azure's first page: a VM of someone else, and a link to the next page
            return _json(fixture("_subscriptions_99999999_providers_Microsoft_Compute_virtualMachines"))
        return _json({"value": list(self.vms.values())})
