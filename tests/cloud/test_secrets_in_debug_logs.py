"""No secret in any log line at DEBUG, for every backend: OpenStack (password and application
credential) against LocalCloud, EC2 through libcloud against moto's EC2 server. Everything is
captured: every Python logger from the root down (urllib3, requests, libcloud, keystoneauth,
openstack, botocore), DIRAC's gLogger at DEBUG, and whatever reached stdout/stderr."""

from __future__ import annotations

import base64
import logging
import urllib.parse
import uuid

import pytest
from keystoneauth1.identity import v3

from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMSpec
from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend
from JenniferDIRAC.Resources.Cloud.redaction import mask_text
from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name
from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority

EC2_SECRET = "ec2-secret-access-key-for-the-log-test"


class Everything(logging.Handler):
    """Formats every record as gLogger's formatter would (message + variable message)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.getMessage()} {getattr(record, 'varmessage', '')}")


@pytest.fixture
def all_logs(capfd):
    from DIRAC import gLogger

    handler = Everything()
    root, dirac = logging.getLogger(), logging.getLogger("dirac")
    old_level = root.level
    root.addHandler(handler)
    dirac.addHandler(handler)
    root.setLevel(logging.DEBUG)
    gLogger.setLevel("DEBUG")
    try:
        yield lambda: "\n".join(handler.lines) + "\n" + "".join(capfd.readouterr())
    finally:
        root.removeHandler(handler)
        dirac.removeHandler(handler)
        root.setLevel(old_level)
        gLogger.setLevel("INFO")


def user_data_with_token(vm_name: str) -> tuple[bytes, str]:
    token = TokenAuthority([b"log-test-secret-0123456789abcdefghijkl"]).issue_for_vm(vm_name, 3600)
    text = f"#cloud-config\nwrite_files:\n  - path: /etc/jdirac/vm.env\n    content: JDIRAC_ENDPOINT_TOKEN={token}\n"
    return text.encode(), token


def forms_of(user_data: bytes, token: str) -> list[str]:
    encoded = base64.b64encode(user_data).decode()
    return [token, token.split(".")[-1], encoded, urllib.parse.quote(encoded, safe=""), encoded[:40]]


def owner():
    return OwnerTags(installation="log-test", ce=f"ce-{uuid.uuid4().hex[:8]}.example", vo="vo1", stamp=make_stamp())


def exercise(backend, image: str, flavor: str) -> bytes:
    who = owner()
    name = make_vm_name()
    user_data, token = user_data_with_token(name)
    spec = VMSpec(name=name, image_id=backend.resolve_image(image), flavor_id=backend.resolve_flavor(flavor).id,
                  user_data=user_data, metadata=who.to_metadata())
    vm = backend.create_vm(spec)
    backend.list_vms(who)
    backend.find_vm_by_name(name, who)
    backend.delete_vms([vm.id])
    return user_data, token


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}... found in the logs"


def test_openstack_password_backend_logs_no_secret(local_cloud, all_logs):
    c = local_cloud.credentials
    auth = v3.Password(auth_url=c.auth_url, username=c.username, password=c.password,
                       user_domain_name=c.domain_name, project_name=c.project_name,
                       project_domain_name=c.domain_name)
    backend = OpenStackBackend(auth=auth, region_name=c.region_name, secrets=[c.password])
    try:
        user_data, token = exercise(backend, "name:EL9-x86_64", "name:m1.small")
        keystone_token = backend.session.get_token()
    finally:
        backend.close()
    text = all_logs()
    assert '"user_data": "***"' in text and "/v3/auth/tokens" in text  # the DEBUG logs were captured
    assert_no_secret(text, [c.password, keystone_token, *forms_of(user_data, token)])


def test_openstack_application_credential_backend_logs_no_secret(local_cloud, all_logs):
    c = local_cloud.credentials
    auth = v3.ApplicationCredential(auth_url=c.auth_url, application_credential_id=c.application_credential_id,
                                    application_credential_secret=c.application_credential_secret)
    backend = OpenStackBackend(auth=auth, secrets=[c.application_credential_secret])
    try:
        user_data, token = exercise(backend, "name:EL9-x86_64", "name:m1.small")
    finally:
        backend.close()
    text = all_logs()
    assert '"user_data": "***"' in text
    assert_no_secret(text, [c.application_credential_secret, *forms_of(user_data, token)])


def test_ec2_backend_logs_no_secret(moto_ec2, ec2_namespace, all_logs):
    host, port = moto_ec2
    backend = LibcloudBackend(cloud_type="EC2", key="test", secret=EC2_SECRET,
                              driver_options={"region": "us-east-1", "host": host, "port": str(port),
                                              "secure": "False", "signature_version": "4"})
    try:
        user_data, token = exercise(backend, "ami-03cf127a", "name:t2.micro")
    finally:
        backend.close()
    text = all_logs()
    assert "UserData=***" in text and "RunInstances" in text  # urllib3's request line was captured
    assert_no_secret(text, [EC2_SECRET, *forms_of(user_data, token)])


@pytest.mark.parametrize(
    "line, hidden",
    [('REQ: curl -X POST -d \'{"server": {"user_data": "I2Nsb3VkLWNvbmZpZw==", "name": "x"}}\'', "I2Nsb3Vk"),
     ('{"auth": {"identity": {"password": {"user": {"name": "u", "password": "hunter2-long"}}}}}', "hunter2"),
     ('{"application_credential": {"id": "abc", "secret": "s3cr3t-value"}}', "s3cr3t"),
     ('RESP BODY: {"server": {"id": "1", "adminPass": "generated-root-pw"}}', "generated-root-pw"),
     ('http://ec2:5000 "GET /?Action=RunInstances&UserData=I2Nsb3Vk%3D&MinCount=1 HTTP/1.1" 200 None', "I2Nsb3Vk"),
     ("Action=RunInstances&userdata=abc123&x=1", "abc123")],
)
def test_mask_rewrites_each_secret_field(line, hidden):
    masked = mask_text(line)
    assert hidden not in masked and "***" in masked
