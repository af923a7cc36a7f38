"""A fake of Microsoft Graph v1.0 and of the Entra ID token endpoint, for the Entra ID connector.

It serves, over HTTPS on 127.0.0.1 (msal accepts only an `https` authority), what the Graph
client uses, with the status codes, error bodies and rules of the v1.0 reference pages:

- OAuth 2.0 client credentials: `GET /{tenant}/v2.0/.well-known/openid-configuration` and
  `POST /{tenant}/oauth2/v2.0/token`. An access token carries the application permissions the
  fake had when it was issued and expires after `expires_in` seconds of the fake's clock; a
  wrong secret answers `invalid_client` / AADSTS7000215 (HTTP 401).
- `GET /v1.0/users/{id | userPrincipalName}` with `$select`; `PATCH` of its properties (204),
  `accountEnabled` alone with `User.EnableDisableAccount.All`.
- Authentication methods: the list (`/authentication/methods`, paged with `@odata.nextLink`),
  each type's collection, and `DELETE` on the types that can be deleted. The default method
  cannot be deleted while the user has others, nor a mobile phone while an alternate mobile
  exists (both 400 `badRequest`).
- Temporary Access Pass: one per user (a new one replaces the old), the lifetime within the
  tenant's policy (`tap_min_minutes`..`tap_max_minutes`, else 400 `badRequest`), the pass value
  returned only by the create call.
- `POST /v1.0/users/{id}/revokeSignInSessions`, answering `{"value": true}` and recording when.
- Directory roles: `roleManagement/directory/roleDefinitions` and `roleAssignments` (list with
  `$filter=principalId eq '…'` and `$expand=roleDefinition`, create, delete); a duplicate
  assignment is 400 `Request_BadRequest` "A conflicting object …".
- `GET /v1.0/auditLogs/directoryAudits` with the two filter shapes the client sends
  (`activityDateTime ge …` and the target or the initiating user), newest first, paged.
- `GET /v1.0/identityProtection/riskyUsers/{id}` (404 when Identity Protection has no record).

Every Graph error has Graph's shape, `{"error": {"code", "message", "innerError": {"date",
"request-id", "client-request-id"}}}`: 401 `InvalidAuthenticationToken`, 403
`Authorization_RequestDenied`, 404 `Request_ResourceNotFound`, 429 `TooManyRequests` with
`Retry-After` (`throttle(...)`).

Test controls: `add_user`, `add_method`, `set_default_method`, `add_role_definition`,
`add_role_assignment`, `add_audit`, `set_risk`, `permissions`, `page_size`, the TAP policy
bounds, `throttle`/`fail_next`, and the state to read afterwards (`users`, `methods`,
`role_assignments`, `pass_values`, `sessions_revoked_at`, `requests`).
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import ipaddress
import re
import secrets
import shutil
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .base import FakeRequest, FakeResponse, FakeService, route

GRAPH_SCOPE = "https://graph.microsoft.com/.default"

# The application permissions that let each call through (the v1.0 permission tables, least
# privileged first).
USER_READ = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
USER_WRITE = ("User.ReadWrite.All", "Directory.ReadWrite.All")
USER_ENABLE = ("User.EnableDisableAccount.All", *USER_WRITE)
METHODS_READ = ("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All")
METHODS_WRITE = ("UserAuthenticationMethod.ReadWrite.All",)
TAP_READ = ("UserAuthMethod-TAP.Read.All", "UserAuthMethod-TAP.ReadWrite.All", *METHODS_READ)
TAP_DELETE = (*METHODS_WRITE, "UserAuthMethod-TAP.ReadWrite.All")
SESSIONS_REVOKE = ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
ROLES_READ = (
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "Directory.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.ReadWrite.All",
)
ROLES_WRITE = ("RoleManagement.ReadWrite.Directory",)
AUDIT_READ = ("AuditLog.Read.All",)
RISK_READ = ("IdentityRiskyUser.Read.All", "IdentityRiskyUser.ReadWrite.All")

# What a freshly registered connector app is granted: the least privileged permission of each.
DEFAULT_PERMISSIONS = frozenset(
    {
        "User.Read.All",
        "User.EnableDisableAccount.All",
        "UserAuthenticationMethod.ReadWrite.All",
        "User.RevokeSessions.All",
        "RoleManagement.ReadWrite.Directory",
        "AuditLog.Read.All",
        "IdentityRiskyUser.Read.All",
    }
)

# Collection under /authentication -> the method type it holds (`#microsoft.graph.<type>…`).
METHOD_COLLECTIONS = {
    "emailMethods": "email",
    "fido2Methods": "fido2",
    "microsoftAuthenticatorMethods": "microsoftAuthenticator",
    "passwordMethods": "password",
    "phoneMethods": "phone",
    "softwareOathMethods": "softwareOath",
    "temporaryAccessPassMethods": "temporaryAccessPass",
    "windowsHelloForBusinessMethods": "windowsHelloForBusiness",
}
DELETABLE_COLLECTIONS = frozenset(METHOD_COLLECTIONS) - {"passwordMethods"}
# Ids Graph documents as the same for every user.
PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"
EMAIL_METHOD_ID = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f"
PHONE_METHOD_IDS = {
    "mobile": "3179e48a-750b-4051-897c-87b9720928f7",
    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc",
}

# Built-in directory roles by template id (the same id in every tenant).
BUILT_IN_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
}

# A user's properties that GET /users/{id} returns without $select.
DEFAULT_USER_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)

AUDIT_FILTER = re.compile(
    r"activityDateTime ge (?P<since>\S+) and (?:"
    r"targetResources/any\((?P<var>\w+):\s*(?P=var)/id eq '(?P<target>[^']*)'\)"
    r"|initiatedBy/user/id eq '(?P<initiator>[^']*)')"
)
PRINCIPAL_FILTER = re.compile(r"principalId eq '(?P<principal>[^']*)'")


def iso(moment: float) -> str:
    """A Graph timestamp (UTC, seven fraction digits as the directory writes them)."""
    utc = dt.datetime.fromtimestamp(moment, dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def graph_error(code: str, message: str, client_request_id: str = "") -> dict[str, Any]:
    """Graph's error body."""
    request_id = str(uuid.uuid4())
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id or request_id,
            },
        }
    }


@dataclass(frozen=True)
class Token:
    expires_at: float
    permissions: frozenset[str]


@dataclass(frozen=True)
class Tls:
    """A throwaway certificate authority and the fake's server certificate for 127.0.0.1."""

    ca_path: str
    cert_path: str
    key_path: str


@functools.cache
def tls_files() -> Tls:
    """Created once per test process: a CA, and a server certificate it signed."""
    folder = tempfile.mkdtemp(prefix="fake-graph-tls-")
    atexit.register(shutil.rmtree, folder, True)
    return _make_tls(Path(folder))


def _make_tls(folder: Path) -> Tls:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vouchsafe test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Tls(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"))
    Path(files.ca_path).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert_path).write_bytes(server.public_bytes(serialization.Encoding.PEM))
    Path(files.key_path).write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class FakeGraph(FakeService):
    """One Entra ID tenant with one registered application, seen through Graph v1.0."""

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        permissions: frozenset[str] = DEFAULT_PERMISSIONS,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or secrets.token_urlsafe(30)
        self.permissions = frozenset(permissions)  # granted to the app (admin consent)
        self.token_lifetime = 3599  # seconds, as Entra issues app-only tokens
        self.page_size = 100
        self.tap_min_minutes, self.tap_max_minutes, self.tap_default_minutes = 60, 480, 60
        self.tap_usable_once_only = False  # the policy's isUsableOnce
        self.users: dict[str, dict[str, Any]] = {}
        self.methods: dict[str, list[dict[str, Any]]] = {}  # user id -> Graph representations
        self.default_method: dict[str, str] = {}  # user id -> method id
        self.pass_values: dict[str, str] = {}  # TAP method id -> the pass, as issued
        self.sessions_revoked_at: dict[str, dt.datetime] = {}
        self.role_definitions = {
            role_id: self._role_definition(role_id, name)
            for role_id, name in BUILT_IN_ROLES.items()
        }
        self.role_assignments: dict[str, dict[str, Any]] = {}
        self.audits: list[dict[str, Any]] = []
        self.risky_users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, Token] = {}

    # --- serving over TLS -------------------------------------------------------------------

    def start(self) -> FakeGraph:
        super().start()
        assert self._server is not None
        files = tls_files()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.cert_path, files.key_path)
        # Nothing has connected yet: from here on every accepted connection speaks TLS.
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        return self

    def __enter__(self) -> FakeGraph:
        return self.start()

    @property
    def url(self) -> str:
        return super().url.replace("http://", "https://", 1)

    @property
    def ca_path(self) -> str:
        """The CA file a client must trust to reach this fake (`REQUESTS_CA_BUNDLE`)."""
        return tls_files().ca_path

    @property
    def authority(self) -> str:
        """What the client passes to msal as `authority`."""
        return f"{self.url}/{self.tenant_id}"

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    # --- test controls ----------------------------------------------------------------------

    def now_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC)

    def add_user(
        self,
        user_principal_name: str,
        display_name: str = "",
        *,
        enabled: bool = True,
        user_id: str | None = None,
        **properties: Any,
    ) -> str:
        """A member user with a password (every user lists a passwordAuthenticationMethod)."""
        user_id = user_id or str(uuid.uuid4())
        self.users[user_id] = {
            "id": user_id,
            "userPrincipalName": user_principal_name,
            "displayName": display_name or user_principal_name.split("@")[0],
            "accountEnabled": enabled,
            "businessPhones": [],
            "givenName": None,
            "jobTitle": None,
            "mail": user_principal_name,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": None,
            "otherMails": [],
            "signInSessionsValidFromDateTime": iso(self.now()),
            **properties,
        }
        self.methods[user_id] = []
        self.add_method(user_id, "password")
        return user_id

    def add_method(self, user_id: str, kind: str, **properties: Any) -> str:
        """Register an authenticator of `kind` (`fido2`, `phone`, `microsoftAuthenticator` …);
        `properties` are its Graph fields (`displayName`, `phoneType`, `phoneNumber` …)."""
        if kind == "password":
            method_id = PASSWORD_METHOD_ID
        elif kind == "email":
            method_id = EMAIL_METHOD_ID
        elif kind == "phone":
            method_id = PHONE_METHOD_IDS[properties.setdefault("phoneType", "mobile")]
        else:
            method_id = properties.pop("id", None) or secrets.token_urlsafe(16)
        created = properties.pop("createdDateTime", None) or iso(self.now())
        method = {
            "@odata.type": f"#microsoft.graph.{kind}AuthenticationMethod",
            "id": method_id,
            **({} if kind in ("phone", "email") else {"createdDateTime": created}),
            **properties,
        }
        self.methods[user_id].append(method)
        return method_id

    def set_default_method(self, user_id: str, method_id: str) -> None:
        self.default_method[user_id] = method_id

    def method_ids(self, user_id: str) -> list[str]:
        return [method["id"] for method in self.methods[user_id]]

    def add_role_definition(self, role_id: str, display_name: str) -> None:
        self.role_definitions[role_id] = self._role_definition(role_id, display_name)

    def add_role_assignment(self, principal_id: str, role_id: str, scope: str = "/") -> str:
        assignment_id = f"{secrets.token_urlsafe(32)}-1"
        self.role_assignments[assignment_id] = {
            "id": assignment_id,
            "principalId": principal_id,
            "roleDefinitionId": role_id,
            "directoryScopeId": scope,
            "resourceScope": scope,
        }
        return assignment_id

    def add_audit(
        self,
        activity: str,
        category: str,
        targets: list[dict[str, Any]],
        *,
        initiated_by: str | None = None,
        at: dt.datetime | None = None,
        result: str = "success",
        service: str = "Core Directory",
    ) -> str:
        """An audit record; each target is a targetResource (`id`, `type`, `displayName`,
        `userPrincipalName`, `modifiedProperties` …). `initiated_by` is a user id."""
        audit_id = f"Directory_{uuid.uuid4()}_{secrets.token_hex(3).upper()}_{len(self.audits)}"
        initiator = self.users.get(initiated_by or "", {})
        self.audits.append(
            {
                "id": audit_id,
                "category": category,
                "correlationId": str(uuid.uuid4()),
                "result": result,
                "resultReason": "",
                "activityDisplayName": activity,
                "activityDateTime": iso((at or self.now_datetime()).timestamp()),
                "loggedByService": service,
                "operationType": "Add",
                "initiatedBy": {
                    "app": None,
                    "user": {
                        "id": initiated_by,
                        "displayName": initiator.get("displayName"),
                        "userPrincipalName": initiator.get("userPrincipalName"),
                        "ipAddress": "203.0.113.7",
                    }
                    if initiated_by
                    else None,
                },
                "targetResources": [
                    {
                        "displayName": None,
                        "userPrincipalName": None,
                        "groupType": None,
                        "modifiedProperties": [],
                        **target,
                    }
                    for target in targets
                ],
                "additionalDetails": [],
            }
        )
        return audit_id

    def set_risk(self, user_id: str, level: str, state: str, detail: str = "none") -> None:
        user = self.users[user_id]
        self.risky_users[user_id] = {
            "@odata.type": "#microsoft.graph.riskyUser",
            "id": user_id,
            "isDeleted": False,
            "isProcessing": False,
            "riskLastUpdatedDateTime": iso(self.now()),
            "riskLevel": level,
            "riskState": state,
            "riskDetail": detail,
            "userDisplayName": user["displayName"],
            "userPrincipalName": user["userPrincipalName"],
        }

    def throttle(self, method: str, path: str, retry_after: int = 2, *, times: int = 1) -> None:
        """The next `times` matching requests answer 429 as Graph throttles."""
        self.fail_next(
            method,
            path,
            429,
            graph_error("TooManyRequests", "Too many requests."),
            {"Retry-After": str(retry_after)},
            times=times,
        )

    # --- OAuth 2.0 (the Microsoft identity platform) -----------------------------------------

    @route("GET", r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration")
    def openid_configuration(self, request: FakeRequest) -> FakeResponse:
        tenant = request.params["tenant"]
        if tenant != self.tenant_id:
            return self._oauth_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.url}/{tenant}"
        return FakeResponse(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            },
        )

    @route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token")
    def token(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if request.params["tenant"] != self.tenant_id:
            message = f"Tenant '{request.params['tenant']}' not found."
            return self._oauth_error(400, "invalid_request", 90002, message)
        if form.get("grant_type") != "client_credentials":
            message = f"The provided value for grant_type '{form.get('grant_type')}' is not valid."
            return self._oauth_error(400, "unsupported_grant_type", 70003, message)
        if form.get("client_id") != self.client_id:
            message = (
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{self.tenant_id}'."
            )
            return self._oauth_error(400, "unauthorized_client", 700016, message)
        if not form.get("client_secret"):
            message = "The request body must contain the following parameter: 'client_secret'."
            return self._oauth_error(401, "invalid_client", 7000218, message)
        if not secrets.compare_digest(form["client_secret"], self.client_secret):
            message = (
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'."
            )
            return self._oauth_error(401, "invalid_client", 7000215, message)
        if form.get("scope") != GRAPH_SCOPE:
            message = (
                f"The provided value for scope {form.get('scope')} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI)."
            )
            return self._oauth_error(400, "invalid_scope", 1002012, message)
        access_token = secrets.token_urlsafe(48)
        self.tokens[access_token] = Token(self.now() + self.token_lifetime, self.permissions)
        return FakeResponse(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": access_token,
            },
        )

    def _oauth_error(self, status: int, error: str, code: int, description: str) -> FakeResponse:
        trace, correlation = uuid.uuid4(), uuid.uuid4()
        stamp = self.now_datetime().strftime("%Y-%m-%d %H:%M:%SZ")
        return FakeResponse(
            status,
            {
                "error": error,
                "error_description": (
                    f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
                    f"Correlation ID: {correlation}\r\nTimestamp: {stamp}"
                ),
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": str(trace),
                "correlation_id": str(correlation),
                "error_uri": f"https://login.microsoftonline.com/error?code={code}",
            },
        )

    # --- users ------------------------------------------------------------------------------

    @route("GET", r"/v1\.0/users/(?P<user>[^/]+)")
    def user_get(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, USER_READ):
            return denied
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        select = request.arg("$select")
        names = select.split(",") if select else DEFAULT_USER_PROPERTIES
        unknown = [name for name in names if name not in user]
        if unknown:
            message = (
                f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.user'."
            )
            return self._error(request, 400, "Request_BadRequest", message)
        return FakeResponse(
            200,
            {
                "@odata.context": f"{self.graph_url}/$metadata#users/$entity",
                **{name: user[name] for name in names},
            },
        )

    @route("PATCH", r"/v1\.0/users/(?P<user>[^/]+)")
    def user_update(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        if not isinstance(body, dict) or not body:
            return self._error(request, 400, "Request_BadRequest", "Give the properties to set.")
        if denied := self._deny(
            request, USER_ENABLE if set(body) == {"accountEnabled"} else USER_WRITE
        ):
            return denied
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        for name, value in body.items():
            if name == "id" or name not in user:
                message = (
                    f"Property '{name}' does not exist as a declared property or extension "
                    "property."
                )
                return self._error(request, 400, "Request_BadRequest", message)
            if name == "accountEnabled" and not isinstance(value, bool):
                message = (
                    "Invalid value specified for property 'accountEnabled' of resource 'User'."
                )
                return self._error(request, 400, "Request_BadRequest", message)
        user.update(body)
        return FakeResponse(204)

    @route("POST", r"/v1\.0/users/(?P<user>[^/]+)/revokeSignInSessions")
    def revoke_sign_in_sessions(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, SESSIONS_REVOKE):
            return denied
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        self.sessions_revoked_at[user["id"]] = self.now_datetime()
        user["signInSessionsValidFromDateTime"] = iso(self.now())
        return FakeResponse(
            200, {"@odata.context": f"{self.graph_url}/$metadata#Edm.Boolean", "value": True}
        )

    # --- authentication methods ---------------------------------------------------------------

    @route("GET", r"/v1\.0/users/(?P<user>[^/]+)/authentication/methods")
    def methods_list(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, METHODS_READ):
            return denied
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        return self._page(request, [self._shown(m) for m in self.methods[user["id"]]])

    @route("GET", r"/v1\.0/users/(?P<user>[^/]+)/authentication/(?P<collection>\w+Methods)")
    def methods_of_type(self, request: FakeRequest) -> FakeResponse:
        collection = request.params["collection"]
        allowed = TAP_READ if collection == "temporaryAccessPassMethods" else METHODS_READ
        if denied := self._deny(request, allowed):
            return denied
        if collection not in METHOD_COLLECTIONS:
            return self.not_found(request)
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        kind = METHOD_COLLECTIONS[collection]
        return self._page(
            request,
            [self._shown(m) for m in self.methods[user["id"]] if self._kind(m) == kind],
        )

    @route(
        "GET", r"/v1\.0/users/(?P<user>[^/]+)/authentication/(?P<collection>\w+)/(?P<method>[^/]+)"
    )
    def method_get(self, request: FakeRequest) -> FakeResponse:
        collection = request.params["collection"]
        allowed = TAP_READ if collection == "temporaryAccessPassMethods" else METHODS_READ
        if denied := self._deny(request, allowed):
            return denied
        found = self._method(request)
        if isinstance(found, FakeResponse):
            return found
        return FakeResponse(200, self._shown(found[1]))

    @route(
        "DELETE",
        r"/v1\.0/users/(?P<user>[^/]+)/authentication/(?P<collection>\w+)/(?P<method>[^/]+)",
    )
    def method_delete(self, request: FakeRequest) -> FakeResponse:
        collection = request.params["collection"]
        allowed = TAP_DELETE if collection == "temporaryAccessPassMethods" else METHODS_WRITE
        if denied := self._deny(request, allowed):
            return denied
        if collection not in DELETABLE_COLLECTIONS:
            return self.method_not_allowed(request)
        found = self._method(request)
        if isinstance(found, FakeResponse):
            return found
        user_id, method = found
        others = [
            m for m in self.methods[user_id] if m is not method and self._kind(m) != "password"
        ]
        if method.get("phoneType") == "mobile" and any(
            m.get("phoneType") == "alternateMobile" for m in others
        ):
            message = "A user can't have an alternateMobile number without a mobile number."
            return self._error(request, 400, "badRequest", message)
        if self.default_method.get(user_id) == method["id"] and others:
            message = (
                "Cannot delete default method with other methods configured. "
                "Please change default method before deletion."
            )
            return self._error(request, 400, "badRequest", message)
        self.methods[user_id].remove(method)
        if self.default_method.get(user_id) == method["id"]:
            del self.default_method[user_id]
        return FakeResponse(204)

    @route("POST", r"/v1\.0/users/(?P<user>[^/]+)/authentication/temporaryAccessPassMethods")
    def temporary_access_pass_create(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, METHODS_WRITE):
            return denied
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        body = request.json() or {}
        lifetime = body.get("lifetimeInMinutes", self.tap_default_minutes)
        if not (
            isinstance(lifetime, int) and self.tap_min_minutes <= lifetime <= self.tap_max_minutes
        ):
            message = (
                "Invalid LifetimeInMinutes specified. The valid range between "
                f"{self.tap_min_minutes} and {self.tap_max_minutes}."
            )
            return self._error(request, 400, "badRequest", message)
        usable_once = body.get("isUsableOnce", self.tap_usable_once_only)
        if self.tap_usable_once_only and not usable_once:
            message = "The Temporary Access Pass policy allows only one-time use passes."
            return self._error(request, 400, "badRequest", message)
        start = body.get("startDateTime")
        starts = dt.datetime.fromisoformat(start).timestamp() if start else self.now()
        # One pass per user: a new one replaces the one before.
        self.methods[user["id"]] = [
            m for m in self.methods[user["id"]] if self._kind(m) != "temporaryAccessPass"
        ]
        method_id = self.add_method(
            user["id"],
            "temporaryAccessPass",
            startDateTime=iso(starts),
            lifetimeInMinutes=lifetime,
            isUsableOnce=usable_once,
        )
        self.pass_values[method_id] = secrets.token_urlsafe(6)
        created = next(m for m in self.methods[user["id"]] if m["id"] == method_id)
        return FakeResponse(
            201,
            {
                "@odata.context": (
                    f"{self.graph_url}/$metadata#users('{user['id']}')/authentication/"
                    "temporaryAccessPassMethods/$entity"
                ),
                **self._shown(created),
                "temporaryAccessPass": self.pass_values[method_id],
            },
        )

    # --- directory roles --------------------------------------------------------------------

    @route("GET", r"/v1\.0/roleManagement/directory/roleDefinitions")
    def role_definitions_list(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, ROLES_READ):
            return denied
        return self._page(request, list(self.role_definitions.values()))

    @route("GET", r"/v1\.0/roleManagement/directory/roleDefinitions/(?P<role>[^/]+)")
    def role_definition_get(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, ROLES_READ):
            return denied
        definition = self.role_definitions.get(request.params["role"])
        if definition is None:
            return self._missing(request, request.params["role"])
        return FakeResponse(200, definition)

    @route("GET", r"/v1\.0/roleManagement/directory/roleAssignments")
    def role_assignments_list(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, ROLES_READ):
            return denied
        assignments = list(self.role_assignments.values())
        condition = request.arg("$filter")
        if condition is not None:
            match = PRINCIPAL_FILTER.fullmatch(condition.strip())
            if match is None:
                return self._unsupported_query(request, condition)
            principal = match["principal"]
            assignments = [a for a in assignments if a["principalId"] == principal]
        expand = request.arg("$expand")
        if expand not in (None, "roleDefinition"):
            return self._unsupported_query(request, expand)
        if expand:
            assignments = [
                {**a, "roleDefinition": self.role_definitions.get(a["roleDefinitionId"])}
                for a in assignments
            ]
        return self._page(request, assignments)

    @route("POST", r"/v1\.0/roleManagement/directory/roleAssignments")
    def role_assignment_create(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, ROLES_WRITE):
            return denied
        body = request.json() or {}
        principal, role = body.get("principalId"), body.get("roleDefinitionId")
        scope = body.get("directoryScopeId")
        if not (principal and role and scope):
            message = "principalId, roleDefinitionId and directoryScopeId are required."
            return self._error(request, 400, "Request_BadRequest", message)
        if principal not in self.users:
            message = f"Invalid principal id '{principal}'."
            return self._error(request, 400, "Request_BadRequest", message)
        if role not in self.role_definitions:
            return self._missing(request, role)
        if any(
            (a["principalId"], a["roleDefinitionId"], a["directoryScopeId"])
            == (principal, role, scope)
            for a in self.role_assignments.values()
        ):
            message = (
                "A conflicting object with one or more of the specified property values is "
                "present in the directory."
            )
            return self._error(request, 400, "Request_BadRequest", message)
        assignment_id = self.add_role_assignment(principal, role, scope)
        return FakeResponse(
            201,
            {
                "@odata.context": (
                    f"{self.graph_url}/$metadata#roleManagement/directory/roleAssignments/$entity"
                ),
                **self.role_assignments[assignment_id],
            },
        )

    @route("DELETE", r"/v1\.0/roleManagement/directory/roleAssignments/(?P<assignment>[^/]+)")
    def role_assignment_delete(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, ROLES_WRITE):
            return denied
        if self.role_assignments.pop(request.params["assignment"], None) is None:
            return self._missing(request, request.params["assignment"])
        return FakeResponse(204)

    # --- audit log and risk -----------------------------------------------------------------

    @route("GET", r"/v1\.0/auditLogs/directoryAudits")
    def directory_audits(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, AUDIT_READ):
            return denied
        condition = (request.arg("$filter") or "").strip()
        match = AUDIT_FILTER.fullmatch(condition)
        if match is None:
            return self._unsupported_query(request, condition)
        try:
            since = dt.datetime.fromisoformat(match["since"])
        except ValueError:
            since = None
        if since is None or since.tzinfo is None:
            return self._unsupported_query(request, match["since"])
        records = [
            record
            for record in self.audits
            if dt.datetime.fromisoformat(record["activityDateTime"]) >= since
            and (
                any(t["id"] == match["target"] for t in record["targetResources"])
                if match["target"] is not None
                else (record["initiatedBy"]["user"] or {}).get("id") == match["initiator"]
            )
        ]
        records.sort(key=lambda record: record["activityDateTime"], reverse=True)
        return self._page(request, records)

    @route("GET", r"/v1\.0/identityProtection/riskyUsers/(?P<user>[^/]+)")
    def risky_user_get(self, request: FakeRequest) -> FakeResponse:
        if denied := self._deny(request, RISK_READ):
            return denied
        risky = self.risky_users.get(request.params["user"])
        if risky is None:
            return self._missing(request, request.params["user"])
        return FakeResponse(200, risky)

    # --- Graph's answers --------------------------------------------------------------------

    def not_found(self, request: FakeRequest) -> FakeResponse:
        segment = request.path.rstrip("/").rsplit("/", 1)[-1]
        message = f"Resource not found for the segment '{segment}'."
        return self._error(request, 400, "BadRequest", message)

    def method_not_allowed(self, request: FakeRequest) -> FakeResponse:
        message = "Specified HTTP method is not allowed for the request target."
        return self._error(request, 405, "Request_BadRequest", message)

    def _error(self, request: FakeRequest, status: int, code: str, message: str) -> FakeResponse:
        client_request_id = request.headers.get("client-request-id", "")
        return FakeResponse(status, graph_error(code, message, client_request_id))

    def _missing(self, request: FakeRequest, name: str) -> FakeResponse:
        message = (
            f"Resource '{unquote(name)}' does not exist or one of its queried reference-property "
            "objects are not present."
        )
        return self._error(request, 404, "Request_ResourceNotFound", message)

    def _unsupported_query(self, request: FakeRequest, clause: str) -> FakeResponse:
        message = f"Unsupported or invalid query filter clause specified: '{clause}'."
        return self._error(request, 400, "Request_UnsupportedQuery", message)

    def _deny(self, request: FakeRequest, allowed: tuple[str, ...]) -> FakeResponse | None:
        """401 without a valid token, 403 when the token lacks every permission in `allowed`."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None or token.expires_at <= self.now():
            message = (
                "Access token is empty."
                if not value
                else "Access token has expired or is not yet valid."
            )
            response = self._error(request, 401, "InvalidAuthenticationToken", message)
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
            )
            return response
        if token.permissions.isdisjoint(allowed):
            message = "Insufficient privileges to complete the operation."
            return self._error(request, 403, "Authorization_RequestDenied", message)
        return None

    def _page(self, request: FakeRequest, items: list[dict[str, Any]]) -> FakeResponse:
        """One page of `items`; `@odata.nextLink` repeats the query with a `$skiptoken`."""
        size = min(int(request.arg("$top") or self.page_size), self.page_size)
        offset = int(request.arg("$skiptoken") or 0)
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#{request.path.split('/v1.0/')[-1]}",
            "value": items[offset : offset + size],
        }
        if offset + size < len(items):
            query = {name: values[-1] for name, values in request.query.items()}
            query["$skiptoken"] = str(offset + size)
            body["@odata.nextLink"] = f"{self.url}{request.path}?{urlencode(query)}"
        return FakeResponse(200, body)

    def _user(self, request: FakeRequest) -> dict[str, Any] | None:
        """The user named in the path by object id or userPrincipalName."""
        key = unquote(request.params["user"])
        if key in self.users:
            return self.users[key]
        return next(
            (u for u in self.users.values() if u["userPrincipalName"].lower() == key.lower()),
            None,
        )

    def _method(self, request: FakeRequest) -> tuple[str, dict[str, Any]] | FakeResponse:
        user = self._user(request)
        if user is None:
            return self._missing(request, request.params["user"])
        kind = METHOD_COLLECTIONS.get(request.params["collection"])
        for method in self.methods[user["id"]]:
            if method["id"] == unquote(request.params["method"]) and self._kind(method) == kind:
                return user["id"], method
        return self._missing(request, request.params["method"])

    def _shown(self, method: dict[str, Any]) -> dict[str, Any]:
        """A method as a read answers it: a pass's value is never read back, and whether it is
        usable now follows from its start and lifetime."""
        if self._kind(method) != "temporaryAccessPass":
            return dict(method)
        start = dt.datetime.fromisoformat(method["startDateTime"]).timestamp()
        end = start + method["lifetimeInMinutes"] * 60
        reason = (
            "NotYetValid"
            if self.now() < start
            else "Expired"
            if self.now() >= end
            else "EnabledByPolicy"
        )
        return {
            **method,
            "temporaryAccessPass": None,
            "isUsable": reason == "EnabledByPolicy",
            "methodUsabilityReason": reason,
        }

    @staticmethod
    def _kind(method: dict[str, Any]) -> str:
        return (
            method["@odata.type"]
            .removeprefix("#microsoft.graph.")
            .removesuffix("AuthenticationMethod")
        )

    @staticmethod
    def _role_definition(role_id: str, display_name: str) -> dict[str, Any]:
        return {
            "id": role_id,
            "templateId": role_id,
            "displayName": display_name,
            "description": "",
            "isBuiltIn": role_id in BUILT_IN_ROLES,
            "isEnabled": True,
        }


@pytest.fixture
def graph_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    """A running Graph fake whose TLS certificate `requests` (and so msal) trusts."""
    with FakeGraph() as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_path)
        yield fake
