"""CloudAuth ini files, clouds.yaml, every OpenStack auth method (OIDC refresh-token exchange
included) end to end against LocalCloud, and make_backend from real CE parameters."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
import yaml

from JenniferDIRAC.Resources.Cloud.backends import make_backend
from JenniferDIRAC.Resources.Cloud.ceconfig import CloudCEConfig
from JenniferDIRAC.Resources.Cloud.credentials import (
    load_cloud_auth,
    load_clouds_yaml,
    openstack_auth_plugin,
)
from JenniferDIRAC.Resources.Cloud.errors import CloudAuthError, CloudUnreachable, ConfigurationError
from JenniferDIRAC.Resources.Cloud.LibcloudBackend import LibcloudBackend
from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend

CE = "cloud.mysite.example"
TOKENS = ("identity", "POST", "/v3/auth/tokens")


def write_private(path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


@pytest.fixture
def owner():
    return OwnerTags(installation="install-a", ce=CE)


def identity_of(cloud) -> dict[str, str]:
    c = cloud.credentials
    return {"auth_url": c.auth_url, "project_name": c.project_name, "user_domain_name": c.domain_name,
            "project_domain_name": c.domain_name}


def backend_from(cloud, creds) -> OpenStackBackend:
    return OpenStackBackend(auth=openstack_auth_plugin(creds, identity_of(cloud)),
                            region_name=cloud.region_name, secrets=creds.secrets())


# --- the CloudAuth file ------------------------------------------------------------------------
def test_dirac_format_default_and_ce_sections(tmp_path):
    path = write_private(tmp_path / "cloud.auth", (
        '[DEFAULT]\nkey = "myusername"\nsecret = "my%password"\n\n'
        f"[{CE}]\nkey = cloudprovuser\nsecret = 01234567\n"
    ))
    assert load_cloud_auth(path, "other.ce").key_secret() == ("myusername", "my%password")
    creds = load_cloud_auth(path, CE)
    assert creds.key_secret() == ("cloudprovuser", "01234567")
    assert (creds.auth_type, creds.values["username"], creds.values["password"]) == (
        "password", "cloudprovuser", "01234567")
    assert creds.source == f"{path} [{CE}]"
    assert "01234567" not in repr(creds)


def test_key_and_secret_follow_the_auth_type(tmp_path):
    path = write_private(tmp_path / "cloud.auth", (
        "[DEFAULT]\nauth_type = v3applicationcredential\nkey = cred-id\nsecret = cred-secret\n"
        "[oidc.ce]\nauth_type = egi-checkin\nsecret = refresh-me\n"
    ))
    creds = load_cloud_auth(path, CE)
    assert creds.values["application_credential_id"] == "cred-id"
    assert creds.values["application_credential_secret"] == "cred-secret"
    assert sorted(creds.secrets()) == ["cred-secret", "cred-secret"]
    assert load_cloud_auth(path, "oidc.ce").values["refresh_token"] == "refresh-me"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_readable_secrets_file_is_refused(tmp_path, mode):
    path = write_private(tmp_path / "cloud.auth", "[DEFAULT]\nkey = k\nsecret = s\n", mode)
    with pytest.raises(ConfigurationError) as info:
        load_cloud_auth(path, CE)
    assert info.value.option == "CloudAuth"
    assert str(info.value).startswith(f"CS option CloudAuth: {path} holds secrets but is accessible")
    assert f"chmod 600 {path}" in str(info.value)


def test_bad_files_name_the_option(tmp_path):
    with pytest.raises(ConfigurationError, match="CS option CloudAuth: file .*/missing does not exist"):
        load_cloud_auth(str(tmp_path / "missing"), CE)
    bad = write_private(tmp_path / "bad", "key = no-section-secret\n")
    with pytest.raises(ConfigurationError, match="not a valid ini file") as info:
        load_cloud_auth(bad, CE)
    assert "no-section-secret" not in str(info.value)
    proxy = write_private(tmp_path / "proxy", "[DEFAULT]\nkey = k\nsecret = PROXY\n")
    with pytest.raises(ConfigurationError, match="PROXY .* is not supported"):
        load_cloud_auth(proxy, CE)
    unknown = write_private(tmp_path / "unknown", "[DEFAULT]\nauth_type = kerberos\n")
    with pytest.raises(ConfigurationError, match="auth_type 'kerberos' is not one of password"):
        load_cloud_auth(unknown, CE)
    incomplete = write_private(tmp_path / "incomplete", "[DEFAULT]\nauth_type = v3applicationcredential\nkey = id\n")
    with pytest.raises(ConfigurationError, match="needs application_credential_secret"):
        openstack_auth_plugin(load_cloud_auth(incomplete, CE), {"auth_url": "http://127.0.0.1:1/v3"})


# --- every auth method against LocalCloud ------------------------------------------------------
def test_password_from_cloud_auth(local_cloud, tmp_path, owner):
    c = local_cloud.credentials
    path = write_private(tmp_path / "cloud.auth", f"[{CE}]\nkey = {c.username}\nsecret = {c.password}\n")
    backend = backend_from(local_cloud, load_cloud_auth(path, CE))
    assert backend.list_vms(owner) == []
    assert backend.quota().max_instances is not None


def test_application_credential_from_cloud_auth(local_cloud, tmp_path, owner):
    c = local_cloud.credentials
    path = write_private(tmp_path / "cloud.auth", (
        f"[DEFAULT]\nauth_type = v3applicationcredential\nkey = {c.application_credential_id}\n"
        f"secret = {c.application_credential_secret}\n"
    ))
    assert backend_from(local_cloud, load_cloud_auth(path, CE)).list_vms(owner) == []


def test_token_from_cloud_auth(local_cloud, tmp_path, owner):
    c = local_cloud.credentials
    issuer = OpenStackBackend(auth=openstack_auth_plugin(
        load_cloud_auth(write_private(tmp_path / "pw", f"[DEFAULT]\nkey = {c.username}\nsecret = {c.password}\n"), CE),
        identity_of(local_cloud)))
    token = issuer.session.get_token()
    path = write_private(tmp_path / "cloud.auth", f"[DEFAULT]\nauth_type = token\nsecret = {token}\n")
    assert backend_from(local_cloud, load_cloud_auth(path, CE)).list_vms(owner) == []


def test_oidc_access_token_from_cloud_auth(local_cloud, tmp_path, owner):
    c = local_cloud.credentials
    path = write_private(tmp_path / "cloud.auth", (
        # DIRAC's libcloud OIDC convention: key = identity provider, secret = access token
        f"[DEFAULT]\nauth_type = v3oidcaccesstoken\nkey = {c.oidc_identity_provider}\n"
        f"secret = {c.oidc_access_token}\nprotocol = {c.oidc_protocol}\n"
    ))
    assert backend_from(local_cloud, load_cloud_auth(path, CE)).list_vms(owner) == []


def egi_auth_file(tmp_path, endpoint, refresh_token: str) -> str:
    return write_private(tmp_path / "cloud.auth", (
        f"[{CE}]\nauth_type = egi-checkin\nsecret = {refresh_token}\n"
        f"client_id = {endpoint.client_id}\nclient_secret = {endpoint.client_secret}\n"
        f"token_endpoint = {endpoint.url}\n"
    ))


def test_egi_checkin_refresh_token_exchange(local_cloud, token_endpoint, tmp_path, owner, caplog):
    caplog.set_level(logging.DEBUG)
    refresh = "refresh-" + uuid.uuid4().hex
    access = ["access-" + uuid.uuid4().hex for _ in range(2)]
    for token in access:
        local_cloud.add_oidc_access_token(token)
    token_endpoint.add_grant(refresh, access)
    token_endpoint.expires_in = 3600
    backend = backend_from(local_cloud, load_cloud_auth(egi_auth_file(tmp_path, token_endpoint, refresh), CE))
    exchange = backend.connection.session.auth.exchange

    assert backend.list_vms(owner) == []
    backend.quota()
    assert exchange.exchanges == 1
    form = token_endpoint.requests[0]
    assert (form["grant_type"], form["refresh_token"]) == ("refresh_token", refresh)

    # Keystone's token expires: keystoneauth re-authenticates with the cached access token
    local_cloud.counters.reset()
    local_cloud.identity.expire_all_tokens()
    assert backend.list_vms(owner) == []
    assert exchange.exchanges == 1
    assert local_cloud.counters.get(*TOKENS) == 1  # the rescoping after the federated login

    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "servers/detail" in text
    for secret in (refresh, *access, token_endpoint.client_secret):
        assert secret not in text


def test_egi_checkin_access_token_renewed_when_it_expires(local_cloud, token_endpoint, tmp_path, owner):
    refresh = "refresh-" + uuid.uuid4().hex
    access = ["access-" + uuid.uuid4().hex for _ in range(2)]
    for token in access:
        local_cloud.add_oidc_access_token(token)
    token_endpoint.add_grant(refresh, access)
    token_endpoint.expires_in = 30  # shorter than the renewal margin: stale at once
    backend = backend_from(local_cloud, load_cloud_auth(egi_auth_file(tmp_path, token_endpoint, refresh), CE))
    assert backend.list_vms(owner) == []
    local_cloud.identity.expire_all_tokens()
    assert backend.list_vms(owner) == []
    assert backend.connection.session.auth.exchange.exchanges == 2
    assert [r["refresh_token"] for r in token_endpoint.requests] == [refresh, refresh]


def test_egi_checkin_refused_or_down(local_cloud, token_endpoint, tmp_path, owner):
    refresh = "revoked-" + uuid.uuid4().hex
    backend = backend_from(local_cloud, load_cloud_auth(egi_auth_file(tmp_path, token_endpoint, refresh), CE))
    with pytest.raises(CloudAuthError, match="refused the refresh token .HTTP 400, invalid_grant") as info:
        backend.list_vms(owner)
    assert refresh not in str(info.value) and token_endpoint.client_secret not in str(info.value)
    token_endpoint.fail_with = 503
    with pytest.raises(CloudUnreachable, match="OIDC token endpoint .* failed .HTTP 503"):
        backend.list_vms(owner)


# --- clouds.yaml -------------------------------------------------------------------------------
def test_clouds_yaml(local_cloud, tmp_path, owner):
    entry = local_cloud.clouds_yaml_entry("v3applicationcredential")
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"localcloud": entry}}))
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match=f"CS option CloudsYamlCloud: {path} holds secrets"):
        load_clouds_yaml("localcloud", str(path))
    os.chmod(path, 0o600)
    with pytest.raises(ConfigurationError, match="CS option CloudsYamlCloud: cloud 'nope'"):
        load_clouds_yaml("nope", str(path))
    cloud = load_clouds_yaml("localcloud", str(path))
    assert cloud.region_name == local_cloud.region_name
    assert local_cloud.credentials.application_credential_secret not in repr(cloud)
    backend = OpenStackBackend(auth=cloud.auth, region_name=cloud.region_name, secrets=cloud.secrets)
    assert backend.list_vms(owner) == []


# --- make_backend from CE parameters -----------------------------------------------------------
def test_make_backend_from_a_dirac_openstack_configuration(local_cloud, tmp_path, owner):
    c = local_cloud.credentials
    auth_file = write_private(tmp_path / "cloud.auth", f"[{CE}]\nkey = {c.username}\nsecret = {c.password}\n")
    params = {  # an existing DIRAC CloudCE configuration (libcloud OpenStack options)
        "CEType": "Cloud",
        "CloudType": "OPENSTACK",
        "CloudAuth": auth_file,
        "Driver_ex_force_auth_url": f"{local_cloud.base_url}/identity",
        "Driver_ex_force_auth_version": "3.x_password",
        "Driver_ex_tenant_name": c.project_name,
        "Driver_ex_domain_name": c.domain_name,
        "Driver_ex_force_service_region": local_cloud.region_name,
        "Instance_Image": "name:EL9-x86_64",
        "Instance_Flavor": "name:m1.small",
        "Instance_Networks": "name:private",
    }
    config = CloudCEConfig.from_ce_parameters(CE, params, installation="install-a")
    backend = make_backend(config)
    assert isinstance(backend, OpenStackBackend)
    assert backend.list_vms(config.owner()) == []
    assert backend.resolve_flavor(config.flavor).name == "m1.small"


def test_make_backend_from_a_dirac_oidc_configuration(local_cloud, tmp_path):
    c = local_cloud.credentials
    auth_file = write_private(tmp_path / "cloud.auth",
                              f"[{CE}]\nkey = {c.oidc_identity_provider}\nsecret = {c.oidc_access_token}\n")
    params = {  # libcloud's OIDC options: ex_tenant_name = protocol, ex_domain_name = project
        "CloudType": "OPENSTACK",
        "CloudAuth": auth_file,
        "Driver_ex_force_auth_url": f"{local_cloud.base_url}/identity",
        "Driver_ex_force_auth_version": "3.x_oidc_access_token",
        "Driver_ex_tenant_name": c.oidc_protocol,
        "Driver_ex_domain_name": c.project_name,
        "Instance_Image": "name:EL9-x86_64",
        "Instance_Flavor": "name:m1.small",
    }
    config = CloudCEConfig.from_ce_parameters(CE, params, installation="install-a")
    backend = make_backend(config)
    assert backend.list_vms(config.owner()) == []
    assert backend.quota().max_instances is not None


def test_make_backend_from_clouds_yaml(local_cloud, tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"lc": local_cloud.clouds_yaml_entry("password")}}))
    os.chmod(path, 0o600)
    config = CloudCEConfig.from_ce_parameters(CE, {
        "CloudsYamlCloud": "lc", "CloudsYamlFile": str(path),
        "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small",
    }, installation="install-a")
    backend = make_backend(config)
    assert backend.list_vms(config.owner()) == []


def test_make_backend_for_ec2(moto_ec2, ec2_namespace, tmp_path):
    host, port = moto_ec2
    auth_file = write_private(tmp_path / "cloud.auth", "[DEFAULT]\nkey = AKIDEXAMPLE\nsecret = ec2-s3cret\n")
    config = CloudCEConfig.from_ce_parameters(CE, {
        "CloudType": "EC2", "CloudAuth": auth_file, "Driver_region": "us-east-1", "Driver_host": host,
        "Driver_port": str(port), "Driver_secure": "False", "Driver_signature_version": "4",
        "Instance_Image": "ami-03cf127a", "Instance_Flavor": "t2.micro", "Quota_MaxInstances": "5",
    }, installation="install-a")
    backend = make_backend(config)
    assert isinstance(backend, LibcloudBackend)
    assert backend.max_user_data_bytes == 16384
    assert backend.list_vms(config.owner()) == []
    assert backend.quota().max_instances == 5


def test_ec2_ce_without_its_cloud_auth_section_is_refused_naming_the_section(moto_ec2, ec2_namespace, tmp_path):
    host, port = moto_ec2
    auth_file = write_private(tmp_path / "cloud.auth", "[other.ce]\nkey = AKIDEXAMPLE\nsecret = ec2-s3cret\n")
    config = CloudCEConfig.from_ce_parameters(CE, {
        "CloudType": "EC2", "CloudAuth": auth_file, "Driver_region": "us-east-1", "Driver_host": host,
        "Driver_port": str(port), "Driver_secure": "False",
        "Instance_Image": "ami-03cf127a", "Instance_Flavor": "t2.micro",
    }, installation="install-a")
    with pytest.raises(ConfigurationError) as info:
        make_backend(config)  # v0.1.0 sent AWSAccessKeyId= (empty) to EC2
    assert info.value.option == "CloudAuth"
    assert f"[{CE}]" in str(info.value) and auth_file in str(info.value)


def test_keystone_url_with_a_wrong_path_names_the_option_it_came_from(local_cloud, tmp_path):
    c = local_cloud.credentials
    auth_file = write_private(tmp_path / "cloud.auth", f"[DEFAULT]\nkey = {c.username}\nsecret = {c.password}\n")
    base = {"CloudType": "OPENSTACK", "CloudAuth": auth_file, "Driver_ex_tenant_name": c.project_name,
            "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small"}
    wrong = f"{local_cloud.base_url}/keystone"
    for options, option in (({"Driver_ex_force_auth_url": wrong}, "Driver_ex_force_auth_url"),
                            ({"AuthURL": wrong + "/v3"}, "AuthURL")):
        config = CloudCEConfig.from_ce_parameters(CE, {**base, **options}, installation="install-a")
        backend = make_backend(config)
        with pytest.raises(ConfigurationError) as info:
            backend.list_vms(config.owner())
        assert info.value.option == option, str(info.value)
        assert "/keystone/v3/auth/tokens" in str(info.value) and c.password not in str(info.value)
        backend.close()


# --- rotated credentials -------------------------------------------------------------------------
def test_a_rotated_cloud_auth_file_is_seen_by_its_state(local_cloud, tmp_path):
    from JenniferDIRAC.Resources.Cloud.backends import credentials_changed

    c = local_cloud.credentials
    auth_file = write_private(tmp_path / "cloud.auth", f"[DEFAULT]\nkey = {c.username}\nsecret = {c.password}\n")
    config = CloudCEConfig.from_ce_parameters(CE, {
        "CloudType": "OPENSTACK", "CloudAuth": auth_file, "AuthURL": c.auth_url, "ProjectName": c.project_name,
        "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small",
    }, installation="install-a")
    backend = make_backend(config)
    assert not credentials_changed(backend)
    write_private(tmp_path / "new.auth", f"[DEFAULT]\nkey = {c.username}\nsecret = rotated\n")
    os.replace(tmp_path / "new.auth", auth_file)  # a new file (inode) under the same name
    assert credentials_changed(backend)
    again = make_backend(config)
    assert not credentials_changed(again)
    with open(auth_file, "a") as handle:  # edited in place
        handle.write("# rotated again\n")
    assert credentials_changed(again)


def test_the_vmdirector_reads_a_rotated_cloud_auth_file(local_cloud, tmp_path, owner):
    from unittest.mock import MagicMock

    from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
    from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import NullDirectorMetrics

    c = local_cloud.credentials
    auth_file = write_private(tmp_path / "cloud.auth", f"[DEFAULT]\nkey = {c.username}\nsecret = {c.password}\n")
    params = {"CloudType": "OPENSTACK", "CloudAuth": auth_file, "AuthURL": c.auth_url,
              "ProjectName": c.project_name, "InstallationName": "install-a",
              "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small"}
    backends = CEBackends(NullDirectorMetrics(), MagicMock())  # the VMDirector's
    _, first = backends.backend(CE, params)
    assert backends.backend(CE, params)[1] is first  # kept while the file is unchanged
    assert first.list_vms(owner) == []
    local_cloud.identity.users[c.user_id].password = "rotated-pw-77a1"
    local_cloud.identity.expire_all_tokens()
    write_private(tmp_path / "new.auth", f"[DEFAULT]\nkey = {c.username}\nsecret = rotated-pw-77a1\n")
    os.replace(tmp_path / "new.auth", auth_file)
    _, second = backends.backend(CE, params)
    assert second is not first
    assert second.list_vms(owner) == []  # the next cycle works without a restart


class RotatingTokenEndpoint:
    """An OAuth2 token endpoint that rotates refresh tokens as EGI Check-in (Keycloak with
    refresh-token revocation) does: each exchange returns a new refresh token and kills the one
    presented; presenting a killed one again revokes the whole family (reuse detection)."""

    def __init__(self, first_refresh: str, access_tokens: list[str], client_id: str = "jdirac-public") -> None:
        self.client_id = client_id
        self.live, self.dead = {first_refresh}, set()
        self.revoked = False
        self.access = list(access_tokens)
        self.requests: list[dict[str, str]] = []
        self._server = self._thread = None
        self.url = ""

    def app(self, environ, start_response):
        import json

        from werkzeug.wrappers import Request, Response

        form = dict(Request(environ).form)
        self.requests.append(form)
        presented = form.get("refresh_token", "")
        if form.get("client_id") != self.client_id or self.revoked or presented not in self.live:
            if presented in self.dead:
                self.revoked = True  # a replayed refresh token: the family is compromised
            body, status = {"error": "invalid_grant"}, 400
        else:
            self.live.discard(presented)
            self.dead.add(presented)
            rotated = "refresh-" + uuid.uuid4().hex
            self.live.add(rotated)
            body = {"access_token": self.access.pop(0), "refresh_token": rotated, "token_type": "Bearer",
                    "expires_in": 30}  # shorter than the client's renewal margin: every login exchanges
            status = 200
        return Response(json.dumps(body), status=status, content_type="application/json")(environ, start_response)

    def __enter__(self):
        import threading

        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


LIST_IN_ANOTHER_PROCESS = """
import sys
from JenniferDIRAC.Resources.Cloud.credentials import load_cloud_auth, openstack_auth_plugin
from JenniferDIRAC.Resources.Cloud.model import OwnerTags
from JenniferDIRAC.Resources.Cloud.OpenStackBackend import OpenStackBackend

creds = load_cloud_auth(sys.argv[1], sys.argv[2])
backend = OpenStackBackend(auth=openstack_auth_plugin(creds, {}), secrets=creds.secrets())
print(len(backend.list_vms(OwnerTags("install-a", sys.argv[2]))))
"""


def list_in_another_process(auth_file: str) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", LIST_IN_ANOTHER_PROCESS, auth_file, CE],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stderr[-2000:]


def test_rotated_refresh_tokens_are_shared_by_every_process_and_survive_a_restart(local_cloud, tmp_path, owner):
    c = local_cloud.credentials
    first = "refresh-" + uuid.uuid4().hex
    access = ["access-" + uuid.uuid4().hex for _ in range(6)]
    for token in access:
        local_cloud.add_oidc_access_token(token)
    with RotatingTokenEndpoint(first, access) as endpoint:
        auth_file = write_private(tmp_path / "cloud.auth", (
            f"[{CE}]\nauth_type = v3oidcrefreshtoken\nkey = {c.oidc_identity_provider}\nsecret = {first}\n"
            f"protocol = {c.oidc_protocol}\nclient_id = {endpoint.client_id}\ntoken_endpoint = {endpoint.url}\n"
            f"auth_url = {c.auth_url}\nproject_name = {c.project_name}\nproject_domain_name = {c.domain_name}\n"
        ))
        creds = load_cloud_auth(auth_file, CE)
        agent = OpenStackBackend(auth=openstack_auth_plugin(creds, {}), secrets=creds.secrets())
        assert agent.list_vms(owner) == []  # exchanges the file's token, which the provider rotates
        list_in_another_process(auth_file)  # a SiteDirector using the same file: the newest token
        local_cloud.identity.expire_all_tokens()
        assert agent.list_vms(owner) == []  # logs in again with the token the other process got
        list_in_another_process(auth_file)  # a restarted process continues from the newest one
        assert not endpoint.revoked and len(endpoint.requests) == 4
        assert [r["refresh_token"] for r in endpoint.requests][0] == first
        assert len({r["refresh_token"] for r in endpoint.requests}) == 4  # none presented twice

        cache = tmp_path / f"cloud.auth.{CE}.oidc"
        assert oct(os.stat(cache).st_mode & 0o777) == "0o600"
        assert first not in cache.read_text()

        # the administrator writes a new refresh token into the file: the file wins
        renewed = "refresh-" + uuid.uuid4().hex
        endpoint.live.add(renewed)
        write_private(tmp_path / "cloud.auth", open(auth_file).read().replace(first, renewed))
        list_in_another_process(auth_file)
        assert endpoint.requests[-1]["refresh_token"] == renewed and not endpoint.revoked
        agent.close()


def test_the_vmdirector_reads_the_file_again_when_the_cloud_refuses_its_credentials(local_cloud, tmp_path):
    from unittest.mock import MagicMock

    from JenniferDIRAC.WorkloadManagementSystem.Director.cloudaccess import CEBackends
    from JenniferDIRAC.WorkloadManagementSystem.Director.report import CENotServedThisCycle
    from JenniferDIRAC.WorkloadManagementSystem.Monitoring.metrics import NullDirectorMetrics

    c = local_cloud.credentials
    auth_file = write_private(tmp_path / "cloud.auth", f"[DEFAULT]\nkey = {c.username}\nsecret = {c.password}\n")
    params = {"CloudType": "OPENSTACK", "CloudAuth": auth_file, "AuthURL": c.auth_url,
              "ProjectName": c.project_name, "InstallationName": "install-a",
              "Instance_Image": "name:EL9-x86_64", "Instance_Flavor": "name:m1.small"}
    backends = CEBackends(NullDirectorMetrics(), MagicMock())  # the VMDirector's
    assert backends.listing(CE, params)[2] == []
    # rotated by a copy that keeps the file's size and time (cp -p): the file looks unchanged
    state = os.stat(auth_file)
    rotated = "x" * len(c.password)
    with open(auth_file, "r+") as handle:
        handle.write(f"[DEFAULT]\nkey = {c.username}\nsecret = {rotated}\n")
    os.utime(auth_file, ns=(state.st_atime_ns, state.st_mtime_ns))
    local_cloud.identity.users[c.user_id].password = rotated
    local_cloud.identity.expire_all_tokens()
    _, backend, vms = backends.listing(CE, params)  # refused, read again, listed
    assert vms == [] and backends.cached[CE][1] is backend
    local_cloud.identity.users[c.user_id].password = "rotated-again-but-not-in-the-file"
    local_cloud.identity.expire_all_tokens()
    with pytest.raises(CENotServedThisCycle, match="listing failed"):
        backends.listing(CE, params)
    assert CE not in backends.cached  # read again at the next cycle
