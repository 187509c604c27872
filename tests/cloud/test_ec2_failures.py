"""EC2 failures are typed from the error body the cloud sends, through libcloud over real HTTP:
moto's own answers where moto produces them, else a loopback server answering with the error
body AWS documents (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)."""

from __future__ import annotations

import uuid

import pytest
from loopback_http import LoopbackServer
from werkzeug.wrappers import Request, Response

from JenniferDIRAC.Resources.Cloud.errors import (
    CapacityExhausted,
    CloudAuthError,
    CloudUnreachable,
    FailureKind,
    NotFound,
    QuotaExceeded,
    RequestRejected,
)
from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import OwnerTags, VMSpec
from JenniferDIRAC.Resources.Cloud.resolving import StaleReference

SECRET = "ec2-failure-secret-value"
AMI = "ami-03cf127a"

AWS_ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"""

# (HTTP status, EC2 error code, AWS's message, the error we raise, its failure kind)
AWS_ANSWERS = [
    (400, "InstanceLimitExceeded", "You have requested more instances (21) than your current instance limit of 20 "
     "allows for the specified instance type.", QuotaExceeded, FailureKind.QUOTA),
    (400, "VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of 32 allows "
     "for the instance bucket that the specified instance type belongs to.", QuotaExceeded, FailureKind.QUOTA),
    (500, "InsufficientInstanceCapacity", "We currently do not have sufficient t2.micro capacity in the "
     "Availability Zone you requested (us-east-1a).", CapacityExhausted, FailureKind.CAPACITY),
    (400, "InvalidParameterValue", "Value (t2.nano2) for parameter instanceType is invalid.", RequestRejected,
     FailureKind.CONFIGURATION),
    (400, "InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist", StaleReference,
     FailureKind.CONFIGURATION),
    (400, "InvalidSubnetID.NotFound", "The subnet ID 'subnet-0123456789abcdef0' does not exist", StaleReference,
     FailureKind.CONFIGURATION),
    (400, "InvalidAMIID.Malformed", "Invalid id: \"ami-1\" (expecting \"ami-...\")", RequestRejected,
     FailureKind.CONFIGURATION),
    (503, "RequestLimitExceeded", "Request limit exceeded.", CloudUnreachable, FailureKind.UNREACHABLE),
    (500, "InternalError", "An internal error has occurred.", CloudUnreachable, FailureKind.UNREACHABLE),
    (503, "Unavailable", "The server is overloaded and can't handle the request.", CloudUnreachable,
     FailureKind.UNREACHABLE),
    (403, "InvalidClientTokenId", "The security token included in the request is invalid.", CloudAuthError,
     FailureKind.AUTH),
    (401, "AuthFailure", "AWS was not able to validate the provided access credentials", CloudAuthError,
     FailureKind.AUTH),
    (403, "UnauthorizedOperation", "You are not authorized to perform this operation.", CloudAuthError,
     FailureKind.AUTH),
]


class EC2ErrorServer:
    """Answers every EC2 request with one error; records the actions asked for."""

    def __init__(self) -> None:
        self.status, self.body, self.content_type = 500, "", "text/xml"
        self.actions: list[str] = []

    def answer(self, status: int, code: str, message: str) -> None:
        self.status, self.body = status, AWS_ERROR.format(code=code, message=message)

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.actions.append(request.values.get("Action", ""))
        return Response(self.body, status=self.status, content_type=self.content_type)(environ, start_response)


def backend_for(host: str, port: int, key: str = "test") -> LibcloudBackend:
    return LibcloudBackend(cloud_type="EC2", key=key, secret=SECRET, driver_options={
        "region": "us-east-1", "host": host, "port": str(port), "secure": "False", "signature_version": "4"})


def spec(image: str = AMI, flavor: str = "t2.micro") -> VMSpec:
    owner = OwnerTags(installation="failures", ce="ce.failures.example")
    return VMSpec(name=f"jdirac-{uuid.uuid4().hex}", image_id=image, flavor_id=flavor,
                  user_data=b"#cloud-config\n", metadata=owner.to_metadata())


@pytest.fixture(scope="module")
def error_server():
    app = EC2ErrorServer()
    with LoopbackServer(app) as server:
        yield app, server


@pytest.mark.parametrize("status, code, message, error, kind", AWS_ANSWERS, ids=[a[1] for a in AWS_ANSWERS])
def test_aws_error_bodies_are_typed(error_server, status, code, message, error, kind):
    app, server = error_server
    app.answer(status, code, message)
    app.actions.clear()
    backend = backend_for("127.0.0.1", server.port)
    with pytest.raises(error) as info:
        backend.create_vm(spec())
    assert type(info.value) is error and info.value.kind is kind
    assert code in str(info.value) and SECRET not in str(info.value)
    if error is StaleReference:
        assert info.value.what == {"InvalidAMIID.NotFound": "image", "InvalidSubnetID.NotFound": "network"}[code]
    assert app.actions == ["RunInstances"]  # the create went over HTTP and was answered once


def test_a_proxy_error_page_is_unreachable(error_server):
    app, server = error_server
    app.status, app.body = 502, "<html><body>Bad Gateway</body></html>"
    with pytest.raises(CloudUnreachable, match="HTTP 502"):
        backend_for("127.0.0.1", server.port).list_vms(OwnerTags(installation="i", ce="c"))


def test_moto_unknown_ami_and_instance_type_are_configuration(moto_ec2_validating, ec2_namespace):
    backend = backend_for(*moto_ec2_validating)
    with pytest.raises(RequestRejected, match="InvalidAMIID.NotFound") as info:
        backend.create_vm(spec(image="ami-00000000deadbeef"))
    assert info.value.kind is FailureKind.CONFIGURATION
    with pytest.raises(RequestRejected, match="InvalidInstanceType") as info:
        backend.create_vm(spec(flavor="t9.enormous"))
    assert info.value.kind is FailureKind.CONFIGURATION
    with pytest.raises(NotFound, match="no image matches 'ami-00000000deadbeef'"):
        backend.resolve_image("ami-00000000deadbeef")


def test_moto_refused_credentials_are_auth(moto_ec2_authenticating, ec2_namespace):
    backend = backend_for(*moto_ec2_authenticating, key="AKIAUNKNOWNKEY000000")
    with pytest.raises(CloudAuthError, match="AuthFailure") as info:
        backend.list_vms(OwnerTags(installation="i", ce="c"))
    assert info.value.kind is FailureKind.AUTH and SECRET not in str(info.value)


def test_a_replaced_image_is_resolved_again(moto_ec2_validating, ec2_namespace):
    import boto3

    host, port = moto_ec2_validating
    boto = boto3.client("ec2", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")
    source = boto.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t2.micro")["Instances"][0]
    name = f"AlmaLinux-9-{uuid.uuid4().hex[:8]}"

    def rotate(old: str | None = None) -> str:  # the site replaces the image behind the name
        if old:
            boto.deregister_image(ImageId=old)
        return boto.create_image(InstanceId=source["InstanceId"], Name=name)["ImageId"]

    try:
        first = rotate()
        backend = backend_for(host, port)
        assert backend.resolve_image(f"name:{name}") == first
        second = rotate(first)
        assert backend.resolve_image(f"name:{name}") == first  # cached
        backend.forget_reference("image", f"name:{name}")  # the cloud said the id is gone
        assert backend.resolve_image(f"name:{name}") == second

        uncached = LibcloudBackend(cloud_type="EC2", key="test", secret=SECRET, reference_ttl=0.0, driver_options={
            "region": "us-east-1", "host": host, "port": str(port), "secure": "False", "signature_version": "4"})
        assert uncached.resolve_image(f"name:{name}") == second
        third = rotate(second)
        assert uncached.resolve_image(f"name:{name}") == third  # expired at once: asked again
    finally:
        boto.terminate_instances(InstanceIds=[source["InstanceId"]])
