"""A fake of Google Workspace as the Workspace connector reaches it: Google's OAuth token
endpoint for a service account with domain-wide delegation, the Admin SDK Directory API and
the Admin SDK Reports API.

What it implements, as Google documents it:

- `POST /token`, the JWT-bearer grant (`urn:ietf:params:oauth:grant-type:jwt-bearer`): the
  assertion's RS256 signature is checked with the public half of the service account's key
  (`kid` names it), `iss` must be a known service account, `aud` Google's token endpoint, `iat`
  and `exp` a lifetime of at most an hour that the fake's clock is inside, `sub` a user of the
  domain. Every scope asked for must be granted to the service account's client id in the
  domain-wide delegation table (Admin console > Security > API controls), else
  `unauthorized_client`. Access tokens expire `token_lifetime` seconds later on the fake's clock.
- Directory API (`/admin/directory/v1/...`): `users.get`, `users.update` (patch semantics,
  `If-Match` answered 412 `conditionNotMet` on a stale etag), `users.signOut`,
  `twoStepVerification.turnOff`, `verificationCodes.generate/list/invalidate`,
  `tokens.list/delete`, `asps.list/delete`, `roles.list`, `roleAssignments.list/insert/delete`
  (409 `duplicate` on a second identical assignment). Each method takes only the scopes its
  discovery document lists; the delegated admin must be an administrator (else 403 `forbidden`,
  "Not Authorized to access this resource/api").
- Gmail API delegates (`/gmail/v1/users/{userId}/settings/delegates`): `create`, `delete`,
  `get`, `list`. The call acts as the mailbox's own user: the token's subject must be the user
  `userId` names (or `userId` is `me`), else 403 "Delegation denied"; `create` and `delete`
  need `gmail.settings.sharing`, `get` and `list` `gmail.settings.basic` (or broader). A
  delegate must be another user of the same Workspace (400 `invalidArgument`); a second
  `create` is 409 `alreadyExists`; deleting one that is not there is 404. Delegates made this
  way are `accepted` at once (no verification e-mail, as for domain-wide delegation).
- Reports API: `activities.list` on `/admin/reports/v1/activity/users/{userKey}/applications/
  {applicationName}` with `startTime`, `endTime`, `eventName`, `filters` (`==`, `<>`),
  `maxResults` (default 1000) and `pageToken`, newest first.
- Errors in Google's JSON shape (`error.code`, `message`, `errors[{domain, reason, message}]`,
  `status`); lists answer without `items` when empty. `fail_with` injects the documented
  failures the fake does not produce by itself (rate limits, `backendError`).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import FakeRequest, FakeResponse, FakeService, route

AUTH = "https://www.googleapis.com/auth/"
USER = AUTH + "admin.directory.user"
USER_READONLY = AUTH + "admin.directory.user.readonly"
USER_SECURITY = AUTH + "admin.directory.user.security"
ROLES = AUTH + "admin.directory.rolemanagement"
ROLES_READONLY = AUTH + "admin.directory.rolemanagement.readonly"
AUDIT_READONLY = AUTH + "admin.reports.audit.readonly"
GMAIL_SHARING = AUTH + "gmail.settings.sharing"
GMAIL_READ_SCOPES = (
    "https://mail.google.com/",
    AUTH + "gmail.modify",
    AUTH + "gmail.readonly",
    AUTH + "gmail.settings.basic",
)
GMAIL_DELEGATE_LIMIT = 1000  # Gmail's documented cap on one user's delegates

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # `aud` of every assertion
ASSERTION_MAX_LIFETIME = 3600
CLOCK_SKEW = 300

DIRECTORY = "/admin/directory/v1"
USER_PATH = DIRECTORY + r"/users/(?P<user_key>[^/]+)"
CUSTOMER_PATH = DIRECTORY + r"/customer/(?P<customer>[^/]+)"
DELEGATES = r"/gmail/v1/users/(?P<user_id>[^/]+)/settings/delegates"
REPORTS = r"/admin/reports/v1/activity/users/(?P<user_key>[^/]+)/applications/(?P<app>[^/]+)"

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> FakeResponse:
    """An Admin SDK error answer, in the shape every Google JSON API uses."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return FakeResponse(status, body, headers or {})


def oauth_error(status: int, error: str, description: str) -> FakeResponse:
    """A token endpoint error answer (RFC 6749 section 5.2)."""
    return FakeResponse(status, {"error": error, "error_description": description})


def _not_found(what: str) -> FakeResponse:
    return google_error(404, "notFound", f"Resource Not Found: {what}")


NO_CONTENT = FakeResponse(204)


def api(method: str, pattern: str, *scopes: str) -> Callable[[Callable], Callable]:
    """A route of the Admin SDK: the bearer token must be valid now, carry one of `scopes`
    (the method's scopes in its discovery document) and act for an administrator."""

    def mark(handler: Callable) -> Callable:
        @wraps(handler)
        def guarded(self: FakeGoogle, request: FakeRequest) -> FakeResponse:
            request.params = {key: unquote(value) for key, value in request.params.items()}
            return self._refusal(request, scopes) or handler(self, request)

        return route(method, pattern)(guarded)

    return mark


def gmail(method: str, pattern: str, *scopes: str) -> Callable[[Callable], Callable]:
    """A route of the Gmail API: a valid bearer token with one of `scopes`, acting as the
    mailbox's own user (`userId` is that user's address, id or `me`). The handler gets the
    user as `request.mailbox`."""

    def mark(handler: Callable) -> Callable:
        @wraps(handler)
        def guarded(self: FakeGoogle, request: FakeRequest) -> FakeResponse:
            request.params = {key: unquote(value) for key, value in request.params.items()}
            return self._gmail_refusal(request, scopes) or handler(self, request)

        return route(method, pattern)(guarded)

    return mark


@dataclass
class ServiceAccount:
    email: str
    client_id: str
    key_id: str
    public_key: rsa.RSAPublicKey


@dataclass
class AccessToken:
    client_id: str
    subject_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class User:
    id: str
    primary_email: str
    full_name: str
    is_admin: bool = False
    suspended: bool = False
    enrolled_2sv: bool = False
    change_password_at_next_login: bool = False
    aliases: list[str] = field(default_factory=list)
    etag: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Grant:
    """An OAuth grant the user gave a third-party application (a Directory `Token`)."""

    client_id: str
    display_text: str
    scopes: list[str]
    native_app: bool = False


@dataclass
class AppPassword:
    code_id: int
    name: str
    created_ms: int
    last_used_ms: int = 0


class FakeGoogle(FakeService):
    customer_id = "C01fake42"

    def __init__(self) -> None:
        super().__init__()
        self.token_lifetime = 3600
        self.page_size: int | None = None  # a server-side cap below the documented page sizes
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.delegation: dict[str, set[str]] = {}  # client id -> scopes granted domain-wide
        self.tokens: dict[str, AccessToken] = {}
        self.users: dict[str, User] = {}
        self.backup_codes: dict[str, list[str]] = {}
        self.grants: dict[str, dict[str, Grant]] = {}
        self.app_passwords: dict[str, dict[int, AppPassword]] = {}
        self.roles: dict[str, tuple[str, bool]] = {}  # role id -> (name, is super admin)
        self.role_assignments: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, list[dict[str, Any]]] = {}
        self.signed_out: list[str] = []  # user ids, in the order of the signOut calls
        self.delegates: dict[str, dict[str, str]] = {}  # mailbox user id -> address -> status
        self._page_tokens: dict[str, int] = {}
        self._serial = 1000

    # --- test controls --------------------------------------------------------------------

    def add_service_account(
        self, email: str = "vouchsafe@example-project.iam.gserviceaccount.com"
    ) -> dict[str, str]:
        """A new service account; answers its key as the JSON key file Google hands out,
        with `token_uri` pointing at this fake."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        account = ServiceAccount(email, self._next_id(), secrets.token_hex(20), key.public_key())
        self.service_accounts[email] = account
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "example-project",
            "private_key_id": account.key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": account.client_id,
            "token_uri": f"{self.url}/token",
        }

    def delegate(self, client_id: str, *scopes: str) -> None:
        """Grant `scopes` to `client_id` domain-wide, as a super admin does in the console."""
        self.delegation.setdefault(client_id, set()).update(scopes)

    def add_user(
        self, email: str, full_name: str = "", *, is_admin: bool = False, **state: Any
    ) -> User:
        user = User(self._next_id(), email, full_name or email.split("@")[0], is_admin, **state)
        self.users[user.id] = user
        return user

    def user(self, user_key: str) -> User:
        found = self._find_user(user_key)
        assert found is not None, f"no user {user_key}"
        return found

    def add_backup_codes(self, user_key: str, *codes: str) -> None:
        self.backup_codes.setdefault(self.user(user_key).id, []).extend(codes)

    def add_grant(self, user_key: str, client_id: str, display_text: str, *scopes: str) -> None:
        grants = self.grants.setdefault(self.user(user_key).id, {})
        grants[client_id] = Grant(client_id, display_text, list(scopes))

    def add_app_password(self, user_key: str, name: str) -> int:
        code_id = int(self._next_id())
        created = int(self.now() * 1000)
        passwords = self.app_passwords.setdefault(self.user(user_key).id, {})
        passwords[code_id] = AppPassword(code_id, name, created)
        return code_id

    def add_role(self, name: str, *, super_admin: bool = False) -> str:
        role_id = self._next_id()
        self.roles[role_id] = (name, super_admin)
        return role_id

    def add_role_assignment(self, user_key: str, role_id: str, org_unit_id: str = "") -> str:
        assignment = self._assignment(self.user(user_key).id, role_id, org_unit_id)
        self.role_assignments[assignment["roleAssignmentId"]] = assignment
        return assignment["roleAssignmentId"]

    def add_activity(
        self,
        application: str,
        actor_email: str,
        event_name: str,
        *,
        event_type: str = "",
        parameters: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> str:
        """Record an audit activity of `application` done by `actor_email`; answers its
        `id.uniqueQualifier`."""
        when = at or datetime.fromtimestamp(self.now(), UTC)
        actor = self._find_user(actor_email)
        qualifier = str(-secrets.randbits(62))
        self.activities.setdefault(application, []).append(
            {
                "kind": "admin#reports#activity",
                "id": {
                    "time": _rfc3339(when),
                    "uniqueQualifier": qualifier,
                    "applicationName": application,
                    "customerId": self.customer_id,
                },
                "etag": f'"{secrets.token_hex(6)}"',
                "actor": {
                    "callerType": "USER",
                    "email": actor_email,
                    **({"profileId": actor.id} if actor else {}),
                },
                "ipAddress": "203.0.113.7",
                "events": [
                    {
                        "type": event_type,
                        "name": event_name,
                        "parameters": [_parameter(k, v) for k, v in (parameters or {}).items()],
                    }
                ],
            }
        )
        return qualifier

    def fail_with(
        self,
        method: str,
        path: str,
        status: int,
        reason: str,
        message: str = "",
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """`fail_next` with a Google-shaped error body."""
        answer = google_error(status, reason, message or reason, headers)
        self.fail_next(method, path, status, answer.body, answer.headers, times=times)

    # --- OAuth ----------------------------------------------------------------------------

    @route("POST", r"/token")
    def token(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if form.get("grant_type") != JWT_BEARER:
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        try:
            header, claims, signed, signature = _read_jwt(form.get("assertion", ""))
        except ValueError:
            return oauth_error(400, "invalid_grant", "Invalid JWT.")
        account = self.service_accounts.get(claims.get("iss", ""))
        if account is None:
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if header.get("alg") != "RS256" or not _signed_by(account.public_key, signed, signature):
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != TOKEN_AUDIENCE:
            return oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        if not self._in_lifetime(claims):
            return oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        subject = self._find_user(claims.get("sub", ""))
        if subject is None:
            return oauth_error(400, "invalid_grant", "Invalid email or User ID")
        scopes = frozenset(claims.get("scope", "").split())
        if not scopes or not scopes <= self.delegation.get(account.client_id, set()):
            return oauth_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
            )
        access_token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[access_token] = AccessToken(
            account.client_id, subject.id, scopes, self.now() + self.token_lifetime
        )
        return FakeResponse(
            200,
            {
                "access_token": access_token,
                "expires_in": self.token_lifetime,
                "token_type": "Bearer",
            },
        )

    def _in_lifetime(self, claims: dict[str, Any]) -> bool:
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int) or not isinstance(expires, int):
            return False
        now = self.now()
        return (
            0 < expires - issued <= ASSERTION_MAX_LIFETIME
            and issued - CLOCK_SKEW <= now < expires + CLOCK_SKEW
        )

    def _refusal(self, request: FakeRequest, scopes: tuple[str, ...]) -> FakeResponse | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self.tokens.get(value) if scheme == "Bearer" else None
        if token is None or token.expires_at <= self.now():
            return google_error(
                401,
                "authError",
                "Request had invalid authentication credentials.",
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if not token.scopes & set(scopes):
            return google_error(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )
        acting = self.users.get(token.subject_id)
        if acting is None or not acting.is_admin:
            return google_error(403, "forbidden", "Not Authorized to access this resource/api")
        return None

    # --- Directory: users -----------------------------------------------------------------

    @api("GET", USER_PATH, USER, USER_READONLY)
    def users_get(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        return FakeResponse(200, self._user_resource(user)) if user else _not_found("userKey")

    @api("PUT", USER_PATH, USER)
    def users_update(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        expected = request.headers.get("if-match")
        if expected is not None and expected != user.etag:
            return google_error(412, "conditionNotMet", "Precondition Failed")
        changes = request.json() or {}
        if "changePasswordAtNextLogin" in changes:
            user.change_password_at_next_login = bool(changes["changePasswordAtNextLogin"])
        if "suspended" in changes:
            user.suspended = bool(changes["suspended"])
        user.etag = secrets.token_hex(8)
        return FakeResponse(200, self._user_resource(user))

    @api("POST", USER_PATH + "/signOut", USER_SECURITY)
    def users_sign_out(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        self.signed_out.append(user.id)
        return NO_CONTENT

    @api("POST", USER_PATH + "/twoStepVerification/turnOff", USER_SECURITY)
    def two_step_verification_turn_off(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        user.enrolled_2sv = False
        return NO_CONTENT

    # --- Directory: backup codes, OAuth grants, app passwords -----------------------------

    @api("POST", USER_PATH + "/verificationCodes/generate", USER_SECURITY)
    def verification_codes_generate(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        self.backup_codes[user.id] = [f"{secrets.randbelow(10**8):08d}" for _ in range(10)]
        return NO_CONTENT

    @api("POST", USER_PATH + "/verificationCodes/invalidate", USER_SECURITY)
    def verification_codes_invalidate(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        self.backup_codes.pop(user.id, None)
        return NO_CONTENT

    @api("GET", USER_PATH + "/verificationCodes", USER_SECURITY)
    def verification_codes_list(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        codes = [
            {"kind": "admin#directory#verificationCode", "userId": user.id, "verificationCode": c}
            for c in self.backup_codes.get(user.id, [])
        ]
        return FakeResponse(200, _listing("admin#directory#verificationCodesList", codes))

    @api("GET", USER_PATH + "/tokens", USER_SECURITY)
    def tokens_list(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        items = [
            {
                "kind": "admin#directory#token",
                "clientId": grant.client_id,
                "displayText": grant.display_text,
                "scopes": grant.scopes,
                "userKey": user.id,
                "anonymous": False,
                "nativeApp": grant.native_app,
            }
            for grant in self.grants.get(user.id, {}).values()
        ]
        return FakeResponse(200, _listing("admin#directory#tokenList", items))

    @api("DELETE", USER_PATH + r"/tokens/(?P<client_id>[^/]+)", USER_SECURITY)
    def tokens_delete(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        grants = self.grants.get(user.id, {}) if user else {}
        if grants.pop(request.params["client_id"], None) is None:
            return _not_found("clientId" if user else "userKey")
        return NO_CONTENT

    @api("GET", USER_PATH + "/asps", USER_SECURITY)
    def asps_list(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        if user is None:
            return _not_found("userKey")
        items = [
            {
                "kind": "admin#directory#asp",
                "codeId": password.code_id,
                "name": password.name,
                "creationTime": str(password.created_ms),
                "lastTimeUsed": str(password.last_used_ms),
                "userKey": user.id,
            }
            for password in self.app_passwords.get(user.id, {}).values()
        ]
        return FakeResponse(200, _listing("admin#directory#aspList", items))

    @api("DELETE", USER_PATH + r"/asps/(?P<code_id>\d+)", USER_SECURITY)
    def asps_delete(self, request: FakeRequest) -> FakeResponse:
        user = self._find_user(request.params["user_key"])
        passwords = self.app_passwords.get(user.id, {}) if user else {}
        if passwords.pop(int(request.params["code_id"]), None) is None:
            return _not_found("codeId" if user else "userKey")
        return NO_CONTENT

    # --- Directory: admin roles -----------------------------------------------------------

    @api("GET", CUSTOMER_PATH + "/roles", ROLES, ROLES_READONLY)
    def roles_list(self, request: FakeRequest) -> FakeResponse:
        if not self._is_customer(request.params["customer"]):
            return google_error(400, "badRequest", "Bad Request")
        items = [
            {
                "kind": "admin#directory#role",
                "roleId": role_id,
                "roleName": name,
                "isSystemRole": True,
                "isSuperAdminRole": super_admin,
            }
            for role_id, (name, super_admin) in self.roles.items()
        ]
        return self._paged(request, "admin#directory#roles", items, default_size=100)

    @api("GET", CUSTOMER_PATH + "/roleassignments", ROLES, ROLES_READONLY)
    def role_assignments_list(self, request: FakeRequest) -> FakeResponse:
        if not self._is_customer(request.params["customer"]):
            return google_error(400, "badRequest", "Bad Request")
        items = list(self.role_assignments.values())
        user_key = request.arg("userKey")
        if user_key is not None:
            user = self._find_user(user_key)
            if user is None:
                return _not_found("userKey")
            items = [item for item in items if item["assignedTo"] == user.id]
        role_id = request.arg("roleId")
        if role_id is not None:
            items = [item for item in items if item["roleId"] == role_id]
        return self._paged(request, "admin#directory#roleAssignments", items, default_size=100)

    @api("POST", CUSTOMER_PATH + "/roleassignments", ROLES)
    def role_assignments_insert(self, request: FakeRequest) -> FakeResponse:
        if not self._is_customer(request.params["customer"]):
            return google_error(400, "badRequest", "Bad Request")
        body = request.json() or {}
        if body.get("roleId") not in self.roles:
            return _not_found("roleId")
        if body.get("assignedTo") not in self.users:
            return _not_found("assignedTo")
        wanted = self._assignment(body["assignedTo"], body["roleId"], body.get("orgUnitId", ""))
        for existing in self.role_assignments.values():
            if all(existing.get(k) == wanted.get(k) for k in _ASSIGNMENT_IDENTITY):
                return google_error(409, "duplicate", "Duplicate role assignment.")
        self.role_assignments[wanted["roleAssignmentId"]] = wanted
        return FakeResponse(200, wanted)

    @api("DELETE", CUSTOMER_PATH + r"/roleassignments/(?P<assignment_id>[^/]+)", ROLES)
    def role_assignments_delete(self, request: FakeRequest) -> FakeResponse:
        if self.role_assignments.pop(request.params["assignment_id"], None) is None:
            return _not_found("roleAssignmentId")
        return NO_CONTENT

    # --- Gmail: delegates -------------------------------------------------------------------

    def delegates_of(self, user_key: str) -> list[str]:
        """The delegate addresses of a mailbox (test control)."""
        return sorted(self.delegates.get(self.user(user_key).id, {}))

    def _gmail_refusal(self, request: FakeRequest, scopes: tuple[str, ...]) -> FakeResponse | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self.tokens.get(value) if scheme == "Bearer" else None
        if token is None or token.expires_at <= self.now():
            return google_error(
                401,
                "authError",
                "Request had invalid authentication credentials.",
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if not token.scopes & set(scopes):
            return google_error(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )
        named = request.params["user_id"]
        acting = self.users.get(token.subject_id)
        mailbox = acting if named == "me" else self._find_user(named)
        if acting is None or mailbox is None or mailbox.id != acting.id:
            return google_error(403, "forbidden", f"Delegation denied for {acting.primary_email}")
        request.mailbox = mailbox  # type: ignore[attr-defined]
        return None

    @staticmethod
    def _delegate_resource(address: str, status: str) -> dict[str, str]:
        return {"delegateEmail": address, "verificationStatus": status}

    @gmail("GET", DELEGATES, *GMAIL_READ_SCOPES)
    def delegates_list(self, request: FakeRequest) -> FakeResponse:
        mine = self.delegates.get(request.mailbox.id, {})  # type: ignore[attr-defined]
        items = [self._delegate_resource(a, status) for a, status in sorted(mine.items())]
        return FakeResponse(200, {"delegates": items} if items else {})

    @gmail("POST", DELEGATES, GMAIL_SHARING)
    def delegates_create(self, request: FakeRequest) -> FakeResponse:
        mailbox = request.mailbox  # type: ignore[attr-defined]
        address = str((request.json() or {}).get("delegateEmail", ""))
        member = self._find_user(address)
        if member is None or member.id == mailbox.id:
            return google_error(400, "invalidArgument", "Invalid delegate")
        mine = self.delegates.setdefault(mailbox.id, {})
        if member.primary_email in mine:
            return google_error(409, "alreadyExists", "Delegate already exists")
        if len(mine) >= GMAIL_DELEGATE_LIMIT:
            return google_error(400, "failedPrecondition", "Too many delegates")
        mine[member.primary_email] = "accepted"
        return FakeResponse(200, self._delegate_resource(member.primary_email, "accepted"))

    @gmail("GET", DELEGATES + r"/(?P<address>[^/]+)", *GMAIL_READ_SCOPES)
    def delegates_get(self, request: FakeRequest) -> FakeResponse:
        mine = self.delegates.get(request.mailbox.id, {})  # type: ignore[attr-defined]
        member = self._find_user(request.params["address"])
        if member is None or member.primary_email not in mine:
            return _not_found("delegateEmail")
        status = mine[member.primary_email]
        return FakeResponse(200, self._delegate_resource(member.primary_email, status))

    @gmail("DELETE", DELEGATES + r"/(?P<address>[^/]+)", GMAIL_SHARING)
    def delegates_delete(self, request: FakeRequest) -> FakeResponse:
        mine = self.delegates.get(request.mailbox.id, {})  # type: ignore[attr-defined]
        member = self._find_user(request.params["address"])
        if member is None or mine.pop(member.primary_email, None) is None:
            return _not_found("delegateEmail")
        return NO_CONTENT

    # --- Reports --------------------------------------------------------------------------

    @api("GET", REPORTS, AUDIT_READONLY)
    def activities_list(self, request: FakeRequest) -> FakeResponse:
        user_key = request.params["user_key"]
        actor = None if user_key == "all" else self._find_user(user_key)
        if user_key != "all" and actor is None:
            return _not_found("userKey")
        try:
            start = _parse_time(request.arg("startTime"))
            end = _parse_time(request.arg("endTime"))
            conditions = _parse_filters(request.arg("filters"))
        except ValueError as error:
            return google_error(400, "invalid", str(error))
        now = datetime.fromtimestamp(self.now(), UTC)
        if start and (start > now or (end and start > end)):
            return google_error(400, "invalid", "Start time must be before end and current time")
        event_name = request.arg("eventName")
        chosen = [
            activity
            for activity in self.activities.get(request.params["app"], [])
            if (actor is None or activity["actor"].get("email") == actor.primary_email)
            and (start is None or _parse_time(activity["id"]["time"]) >= start)
            and (end is None or _parse_time(activity["id"]["time"]) < end)
            and any(_event_matches(event, event_name, conditions) for event in activity["events"])
        ]
        chosen.sort(key=lambda activity: activity["id"]["time"], reverse=True)
        return self._paged(request, "admin#reports#activities", chosen, default_size=1000)

    # --- helpers --------------------------------------------------------------------------

    def _paged(
        self, request: FakeRequest, kind: str, items: list[dict[str, Any]], default_size: int
    ) -> FakeResponse:
        """One page of `items`; a further page is named by an opaque `nextPageToken`."""
        token = request.arg("pageToken")
        if token is not None and token not in self._page_tokens:
            return google_error(400, "invalid", "Invalid page token")
        start = self._page_tokens.get(token or "", 0)
        size = int(request.arg("maxResults") or default_size)
        size = min(size, self.page_size or size)
        page = _listing(kind, items[start : start + size])
        if start + size < len(items):
            next_token = secrets.token_urlsafe(12)
            self._page_tokens[next_token] = start + size
            page["nextPageToken"] = next_token
        return FakeResponse(200, page)

    def _find_user(self, user_key: str) -> User | None:
        """A user by unique id, primary e-mail address or alias, as a `userKey` names one."""
        if user_key in self.users:
            return self.users[user_key]
        wanted = user_key.lower()
        for user in self.users.values():
            if wanted == user.primary_email.lower() or wanted in map(str.lower, user.aliases):
                return user
        return None

    def _is_customer(self, customer: str) -> bool:
        return customer in ("my_customer", self.customer_id)

    def _user_resource(self, user: User) -> dict[str, Any]:
        given, _, family = user.full_name.partition(" ")
        return {
            "kind": "admin#directory#user",
            "id": user.id,
            "etag": user.etag,
            "primaryEmail": user.primary_email,
            "name": {"givenName": given, "familyName": family, "fullName": user.full_name},
            "isAdmin": user.is_admin,
            "isDelegatedAdmin": False,
            "suspended": user.suspended,
            "isEnrolledIn2Sv": user.enrolled_2sv,
            "isEnforcedIn2Sv": False,
            "changePasswordAtNextLogin": user.change_password_at_next_login,
            "customerId": self.customer_id,
            "orgUnitPath": "/",
            **({"aliases": user.aliases} if user.aliases else {}),
        }

    def _assignment(self, user_id: str, role_id: str, org_unit_id: str) -> dict[str, Any]:
        return {
            "kind": "admin#directory#roleAssignment",
            "roleAssignmentId": self._next_id(),
            "roleId": role_id,
            "assignedTo": user_id,
            "assigneeType": "user",
            "scopeType": "ORG_UNIT" if org_unit_id else "CUSTOMER",
            **({"orgUnitId": org_unit_id} if org_unit_id else {}),
        }

    def _next_id(self) -> str:
        self._serial += 1
        return f"1{self._serial:011d}"

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return google_error(404, "notFound", "Not Found")

    def method_not_allowed(self, request: FakeRequest) -> FakeResponse:
        return google_error(405, "httpMethodNotAllowed", "Method Not Allowed")


_ASSIGNMENT_IDENTITY = ("roleId", "assignedTo", "scopeType", "orgUnitId")


def _listing(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A collection answer: Google leaves `items` out when there are none."""
    return {
        "kind": kind,
        "etag": f'"{secrets.token_hex(6)}"',
        **({"items": items} if items else {}),
    }


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _read_jwt(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signed bytes and signature of a compact JWS (ValueError if malformed)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    try:
        header, claims = json.loads(_b64decode(parts[0])), json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError("undecodable JWS") from error
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _signed_by(public_key: rsa.RSAPublicKey, signed: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"Invalid value for time: {value}") from error


def _parameter(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"name": name, "boolValue": value}
    if isinstance(value, int):
        return {"name": name, "intValue": str(value)}
    if isinstance(value, list):
        return {"name": name, "multiValue": [str(item) for item in value]}
    return {"name": name, "value": str(value)}


def _parse_filters(raw: str | None) -> list[tuple[str, str, str]]:
    """`filters` as (parameter, operator, value); the fake knows `==` and `<>`."""
    conditions = []
    for clause in (raw or "").split(",") if raw else []:
        for operator in ("==", "<>"):
            name, found, value = clause.partition(operator)
            if found:
                conditions.append((name, operator, value))
                break
        else:
            raise ValueError(f"Invalid filter: {clause}")
    return conditions


def _event_matches(
    event: dict[str, Any], event_name: str | None, conditions: list[tuple[str, str, str]]
) -> bool:
    if event_name is not None and event["name"] != event_name:
        return False
    values = {
        parameter["name"]: str(
            parameter.get("value", parameter.get("intValue", parameter.get("boolValue", "")))
        )
        for parameter in event["parameters"]
    }
    return all(
        name in values and (values[name] == value) == (operator == "==")
        for name, operator, value in conditions
    )


@pytest.fixture
def google_fake():
    with FakeGoogle() as fake:
        yield fake
