"""Keystone v3 subset: password, application_credential and token auth, OIDC federation.

``IdentityState`` holds projects, users, application credentials, accepted OIDC access tokens
and issued tokens; ``IdentityAPI`` is its HTTP face under ``/identity``.

Just over 400 lines and kept whole: it is one service, Keystone's token issue and validation,
and its state and its routes change together whenever an auth method is added.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from werkzeug.wrappers import Response

from .clock import Clock, iso_micro
from .errors import BadRequest, NotFound, Unauthorized
from .ids import IdFactory
from .wire import Call, ServiceAPI, empty_response, html_response, json_response, new_request_id, route

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
AUTH_REQUIRED = "The request you have made requires authentication."


@dataclass
class Project:
    id: str
    name: str
    domain_id: str = DEFAULT_DOMAIN_ID


@dataclass
class User:
    id: str
    name: str
    password: str = field(repr=False)
    default_project_id: str | None = None
    domain_id: str = DEFAULT_DOMAIN_ID


@dataclass
class ApplicationCredential:
    id: str
    name: str
    secret: str = field(repr=False)
    user_id: str
    project_id: str


@dataclass
class FederatedIdentity:
    """An OIDC access token the cloud accepts, and the local user it maps to."""

    access_token: str = field(repr=False)
    identity_provider: str
    protocol: str
    user_id: str


@dataclass
class Token:
    id: str = field(repr=False)
    user_id: str
    project_id: str | None
    methods: list[str]
    issued_at: float
    expires_at: float
    audit_id: str
    federation: tuple[str, str] | None = None  # (identity provider, protocol)
    application_credential_id: str | None = None


class IdentityState:
    """Users, projects and tokens. Thread-safe; every method may be called from tests."""

    def __init__(self, clock: Clock, ids: IdFactory, token_ttl: float = 3600.0) -> None:
        self.clock = clock
        self.ids = ids
        self.token_ttl = token_ttl
        self.projects: dict[str, Project] = {}
        self.users: dict[str, User] = {}
        self.application_credentials: dict[str, ApplicationCredential] = {}
        self.federated: dict[str, FederatedIdentity] = {}
        self.tokens: dict[str, Token] = {}
        self.identity_providers: set[tuple[str, str]] = set()
        # Set by the cloud so that tokens can carry the service catalog of the right URL.
        self.catalog_factory: Callable[[str], list[dict[str, Any]]] = lambda base_url: []
        self._lock = threading.RLock()

    # --- seeding ---------------------------------------------------------------------------
    def add_project(self, name: str, project_id: str | None = None) -> Project:
        with self._lock:
            project = Project(id=project_id or self.ids.hex(), name=name)
            self.projects[project.id] = project
            return project

    def add_user(self, name: str, password: str, project: Project | None = None) -> User:
        with self._lock:
            user = User(
                id=self.ids.hex(), name=name, password=password,
                default_project_id=project.id if project else None,
            )
            self.users[user.id] = user
            return user

    def add_application_credential(self, user: User, project: Project, name: str) -> ApplicationCredential:
        with self._lock:
            cred = ApplicationCredential(
                id=self.ids.hex(), name=name, secret=secrets.token_urlsafe(24),
                user_id=user.id, project_id=project.id,
            )
            self.application_credentials[cred.id] = cred
            return cred

    def add_oidc_access_token(
        self, access_token: str, user: User, identity_provider: str, protocol: str = "openid"
    ) -> FederatedIdentity:
        with self._lock:
            entry = FederatedIdentity(access_token, identity_provider, protocol, user.id)
            self.federated[access_token] = entry
            self.identity_providers.add((identity_provider, protocol))
            return entry

    # --- tokens ----------------------------------------------------------------------------
    def issue(self, user: User, project_id: str | None, methods: list[str], **extra: Any) -> Token:
        now = self.clock.now()
        token = Token(
            id="gAAAA" + secrets.token_urlsafe(48),
            user_id=user.id,
            project_id=project_id,
            methods=methods,
            issued_at=now,
            expires_at=now + self.token_ttl,
            audit_id=secrets.token_urlsafe(16)[:22],
            **extra,
        )
        with self._lock:
            self.tokens[token.id] = token
        return token

    def validate(self, token_id: str | None) -> Token:
        """The live token with this id, or Unauthorized (unknown, revoked or expired)."""
        if not token_id:
            raise Unauthorized(AUTH_REQUIRED)
        with self._lock:
            token = self.tokens.get(token_id)
            if token is None:
                raise Unauthorized(AUTH_REQUIRED)
            if token.expires_at <= self.clock.now():
                del self.tokens[token_id]
                raise Unauthorized(AUTH_REQUIRED)
            return token

    def revoke(self, token_id: str) -> None:
        with self._lock:
            if self.tokens.pop(token_id, None) is None:
                raise NotFound("Could not find token.")

    def expire_all_tokens(self) -> int:
        """Expire every issued token now (clients must re-authenticate); returns how many."""
        with self._lock:
            count = len(self.tokens)
            self.tokens.clear()
            return count

    def authenticate(self, body: dict[str, Any]) -> Token:
        """``POST /v3/auth/tokens``: the token for an ``auth`` request body."""
        auth = body.get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise BadRequest("Expecting to find identity in auth.")
        identity = auth["identity"]
        methods = identity.get("methods") or []
        scope = auth.get("scope")
        if "application_credential" in methods:
            cred = self._find_application_credential(identity.get("application_credential") or {})
            user = self.users[cred.user_id]
            return self.issue(user, cred.project_id, ["application_credential"],
                              application_credential_id=cred.id)
        if "password" in methods:
            user = self._check_password(identity.get("password") or {})
            project_id = self._scope_project(user, scope, default_to_user=True)
            return self.issue(user, project_id, ["password"])
        if "token" in methods:
            old = self.validate((identity.get("token") or {}).get("id"))
            user = self.users[old.user_id]
            project_id = self._scope_project(user, scope, default_to_user=False) or old.project_id
            methods_out = list(dict.fromkeys(["token", *old.methods]))
            return self.issue(user, project_id, methods_out, federation=old.federation)
        raise Unauthorized(AUTH_REQUIRED)

    def federated_auth(self, identity_provider: str, protocol: str, authorization: str | None) -> Token:
        """OIDC access token -> unscoped federated token (what ``v3oidcaccesstoken`` uses)."""
        if (identity_provider, protocol) not in self.identity_providers:
            raise NotFound(f"Could not find Identity Provider: {identity_provider}.")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized(AUTH_REQUIRED)
        access_token = authorization.split(None, 1)[1].strip()
        with self._lock:
            entry = self.federated.get(access_token)
        if entry is None or (entry.identity_provider, entry.protocol) != (identity_provider, protocol):
            raise Unauthorized(AUTH_REQUIRED)
        return self.issue(self.users[entry.user_id], None, [protocol],
                          federation=(identity_provider, protocol))

    def projects_of(self, token: Token) -> list[Project]:
        user = self.users[token.user_id]
        with self._lock:
            return [p for p in self.projects.values() if p.id == user.default_project_id]

    # --- helpers ---------------------------------------------------------------------------
    def _find_application_credential(self, spec: dict[str, Any]) -> ApplicationCredential:
        secret = spec.get("secret")
        with self._lock:
            if spec.get("id"):
                cred = self.application_credentials.get(spec["id"])
            else:
                user = self._find_user(spec.get("user") or {}) if spec.get("user") else None
                cred = next(
                    (c for c in self.application_credentials.values()
                     if c.name == spec.get("name") and (user is None or c.user_id == user.id)),
                    None,
                )
        if cred is None or not secret or not secrets.compare_digest(cred.secret, str(secret)):
            raise Unauthorized(AUTH_REQUIRED)
        return cred

    def _find_user(self, spec: dict[str, Any]) -> User:
        with self._lock:
            if spec.get("id"):
                user = self.users.get(spec["id"])
            else:
                domain = spec.get("domain") or {}
                user = next(
                    (u for u in self.users.values()
                     if u.name == spec.get("name") and _domain_matches(domain)),
                    None,
                )
        if user is None:
            raise Unauthorized(AUTH_REQUIRED)
        return user

    def _check_password(self, spec: dict[str, Any]) -> User:
        user_spec = spec.get("user") or {}
        user = self._find_user(user_spec)
        given = str(user_spec.get("password", ""))
        if not secrets.compare_digest(user.password, given):
            raise Unauthorized(AUTH_REQUIRED)
        return user

    def _scope_project(self, user: User, scope: Any, default_to_user: bool) -> str | None:
        if not isinstance(scope, dict) or "project" not in scope:
            return user.default_project_id if default_to_user else None
        spec = scope["project"] or {}
        with self._lock:
            if spec.get("id"):
                project = self.projects.get(spec["id"])
            else:
                project = next(
                    (p for p in self.projects.values()
                     if p.name == spec.get("name") and _domain_matches(spec.get("domain") or {})),
                    None,
                )
        # Every user has a role on its own project only.
        if project is None or project.id != user.default_project_id:
            raise Unauthorized(AUTH_REQUIRED)
        return project.id


def _domain_matches(domain: dict[str, Any]) -> bool:
    if not domain:
        return True
    return domain.get("id") == DEFAULT_DOMAIN_ID or domain.get("name") == DEFAULT_DOMAIN_NAME


class IdentityAPI(ServiceAPI):
    name = "identity"
    prefix = "/identity"
    public = frozenset({"versions", "version_v3", "create_token", "federated_auth"})

    def __init__(self, state: IdentityState) -> None:
        self.state = state

    def rules(self):
        return [
            route("/", "versions", "GET"),
            route("/v3", "version_v3", "GET"),
            route("/v3/auth/tokens", "create_token", "POST"),
            route("/v3/auth/tokens", "check_token", "GET", "HEAD"),
            route("/v3/auth/tokens", "revoke_token", "DELETE"),
            route("/v3/auth/projects", "auth_projects", "GET"),
            route("/v3/auth/catalog", "auth_catalog", "GET"),
            route(
                "/v3/OS-FEDERATION/identity_providers/<idp>/protocols/<protocol>/auth",
                "federated_auth", "GET", "POST",
            ),
        ]

    def unmatched(self, method: str, path: str, status: int, allowed: list[str]) -> Response:
        if status == 405:  # Keystone (flask-restful) answers JSON here, an HTML page for 404
            response = json_response({"message": "The method is not allowed for the requested URL."}, 405,
                                     headers={"Allow": ", ".join(allowed)})
            response.headers["x-openstack-request-id"] = new_request_id()
            response.headers["Vary"] = "X-Auth-Token"
            return response
        response = html_response(404, "404 Not Found", "The requested URL was not found on the server.")
        response.headers["Vary"] = "X-Auth-Token"
        return response

    def error_body(self, code: int, message: str) -> dict[str, Any]:
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
        return {"error": {"code": code, "message": message, "title": titles.get(code, "Error")}}

    def _version(self, base_url: str) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base_url}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def versions(self, call: Call) -> Response:
        return json_response({"versions": {"values": [self._version(call.base_url)]}}, status=300)

    def version_v3(self, call: Call) -> Response:
        return json_response({"version": self._version(call.base_url)})

    def token_body(self, token: Token, base_url: str) -> dict[str, Any]:
        state = self.state
        user = state.users[token.user_id]
        body: dict[str, Any] = {
            "methods": token.methods,
            "user": {
                "id": user.id,
                "name": user.name,
                "domain": {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME},
                "password_expires_at": None,
            },
            "audit_ids": [token.audit_id],
            "issued_at": iso_micro(token.issued_at),
            "expires_at": iso_micro(token.expires_at),
        }
        if token.federation:
            idp, protocol = token.federation
            body["user"]["OS-FEDERATION"] = {
                "identity_provider": {"id": idp}, "protocol": {"id": protocol}, "groups": [],
            }
        if token.project_id:
            project = state.projects[token.project_id]
            body["project"] = {
                "id": project.id, "name": project.name,
                "domain": {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME},
            }
            body["is_domain"] = False
            body["roles"] = [{"id": "member-role", "name": "member"}, {"id": "reader-role", "name": "reader"}]
            body["catalog"] = state.catalog_factory(base_url)
        if token.application_credential_id:
            cred = state.application_credentials[token.application_credential_id]
            body["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": True}
        return {"token": body}

    def _token_response(self, token: Token, call: Call, status: int) -> Response:
        return json_response(self.token_body(token, call.base_url), status=status,
                             headers={"X-Subject-Token": token.id})

    def create_token(self, call: Call) -> Response:
        return self._token_response(self.state.authenticate(call.json()), call, 201)

    def federated_auth(self, call: Call, idp: str, protocol: str) -> Response:
        token = self.state.federated_auth(idp, protocol, call.request.headers.get("Authorization"))
        return self._token_response(token, call, 201)

    def check_token(self, call: Call) -> Response:
        try:
            subject = self.state.validate(call.request.headers.get("X-Subject-Token"))
        except Unauthorized:  # the caller is authenticated; it is the subject that is unknown
            raise NotFound("Could not recognize Fernet token") from None
        return self._token_response(subject, call, 200)

    def revoke_token(self, call: Call) -> Response:
        self.state.revoke(call.request.headers.get("X-Subject-Token", ""))
        return empty_response()

    def auth_projects(self, call: Call) -> Response:
        projects = self.state.projects_of(call.token)
        return json_response({
            "projects": [
                {"id": p.id, "name": p.name, "domain_id": p.domain_id, "enabled": True,
                 "is_domain": False, "links": {"self": f"{call.base_url}/identity/v3/projects/{p.id}"}}
                for p in projects
            ],
            "links": {"self": f"{call.base_url}/identity/v3/auth/projects", "next": None, "previous": None},
        })

    def auth_catalog(self, call: Call) -> Response:
        return json_response({"catalog": self.state.catalog_factory(call.base_url),
                              "links": {"self": f"{call.base_url}/identity/v3/auth/catalog"}})

    def finish(self, call: Call, response: Response) -> None:
        response.headers["Vary"] = "X-Auth-Token"  # as Keystone: answers depend on the token
        super().finish(call, response)
