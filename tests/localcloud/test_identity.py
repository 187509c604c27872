"""Keystone v3 wire details: discovery, token validation and revocation, credential variants."""

import requests


def _post_token(cloud, identity, scope=None):
    body = {"auth": {"identity": identity}}
    if scope:
        body["auth"]["scope"] = scope
    return requests.post(f"{cloud.auth_url}/auth/tokens", json=body, timeout=5)


def test_version_discovery(local_cloud):
    root = requests.get(f"{local_cloud.base_url}/identity", timeout=5)
    assert root.status_code == 300
    [version] = root.json()["versions"]["values"]
    assert version["id"].startswith("v3") and version["links"][0]["href"].endswith("/identity/v3/")
    assert requests.get(local_cloud.auth_url, timeout=5).json()["version"]["status"] == "stable"
    compute = requests.get(f"{local_cloud.base_url}/compute/v2.1", timeout=5).json()["version"]
    assert (compute["min_version"], compute["version"]) == ("2.1", "2.96")


def test_token_validate_and_revoke(local_cloud):
    c = local_cloud.credentials
    issued = _post_token(local_cloud, {"methods": ["password"], "password": {"user": {
        "id": c.user_id, "password": c.password}}})
    assert issued.status_code == 201
    token = issued.headers["X-Subject-Token"]
    body = issued.json()["token"]
    assert body["project"]["id"] == c.project_id
    assert {e["type"] for e in body["catalog"]} == {"identity", "compute", "image", "network"}
    headers = {"X-Auth-Token": token, "X-Subject-Token": token}
    checked = requests.get(f"{local_cloud.auth_url}/auth/tokens", headers=headers, timeout=5)
    assert checked.status_code == 200 and checked.json()["token"]["user"]["name"] == c.username
    assert requests.delete(f"{local_cloud.auth_url}/auth/tokens", headers=headers, timeout=5).status_code == 204
    after = requests.get(f"{local_cloud.base_url}/compute/v2.1/servers", headers=headers, timeout=5)
    assert after.status_code == 401
    assert after.json()["error"]["title"] == "Unauthorized"
    assert "Keystone uri=" in after.headers["WWW-Authenticate"]


def test_application_credential_by_name_and_bad_requests(local_cloud):
    c = local_cloud.credentials
    by_name = _post_token(local_cloud, {"methods": ["application_credential"], "application_credential": {
        "name": c.application_credential_name, "secret": c.application_credential_secret,
        "user": {"name": c.username, "domain": {"name": "Default"}}}})
    assert by_name.status_code == 201
    assert by_name.json()["token"]["application_credential"]["id"] == c.application_credential_id
    other_project = _post_token(local_cloud, {"methods": ["password"], "password": {"user": {
        "name": c.username, "domain": {"id": "default"}, "password": c.password}}},
        scope={"project": {"name": "someone-else", "domain": {"id": "default"}}})
    assert other_project.status_code == 401
    malformed = requests.post(f"{local_cloud.auth_url}/auth/tokens", data=b"{", timeout=5)
    assert malformed.status_code == 400 and "Malformed" in malformed.json()["error"]["message"]


def test_oidc_unscoped_token_then_projects(local_cloud):
    c = local_cloud.credentials
    url = (f"{local_cloud.auth_url}/OS-FEDERATION/identity_providers/{c.oidc_identity_provider}"
           f"/protocols/{c.oidc_protocol}/auth")
    unscoped = requests.post(url, headers={"Authorization": f"Bearer {c.oidc_access_token}"}, timeout=5)
    assert unscoped.status_code == 201
    body = unscoped.json()["token"]
    assert "project" not in body and body["user"]["OS-FEDERATION"]["identity_provider"]["id"] == "egi.eu"
    projects = requests.get(f"{local_cloud.auth_url}/auth/projects",
                            headers={"X-Auth-Token": unscoped.headers["X-Subject-Token"]}, timeout=5)
    assert [p["id"] for p in projects.json()["projects"]] == [c.project_id]
    unknown_idp = url.replace(c.oidc_identity_provider, "nobody")
    assert requests.post(unknown_idp, headers={"Authorization": "Bearer x"}, timeout=5).status_code == 404
