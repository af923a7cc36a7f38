"""A fake Okta org: the Management API endpoints the Okta connector uses, and the org
authorization server's token endpoint for an OAuth 2.0 service app.

What it implements, as Okta documents it (developer.okta.com: "Implement OAuth for Okta with a
service app", the Management API reference, the error-code and OAuth 2.0 error-code catalogues,
"Rate limit best practices", the System Log API):

- `POST /oauth2/v1/token`: client credentials with a `private_key_jwt` client assertion. The
  assertion is verified against the app's registered public keys (`kid`), `iss` = `sub` = the
  client id, `aud` = this endpoint, `exp` present, not past and at most an hour ahead, `iat`
  not ahead, and a `jti` is usable once. Requested scopes must be granted to the app. Tokens
  last 3600 s on the fake's clock. Errors are `{"error", "error_description"}` with Okta's texts.
- `Authorization: SSWS <api token>` (all scopes) or `Bearer <access token>` (its scopes); a
  bad or expired token is 401 `E0000011`, a missing scope 403 `E0000006`.
- Users (by id or login; `POST` is the partial profile update, `null` clearing an attribute),
  `unlock` (a `LOCKED_OUT` user only, else 403 `E0000038`), factors (list, unenroll, reset
  all), sessions (with `oauthTokens` and `forgetDevices`), `reset_password` (`sendEmail`
  required; `false` answers a one-time `resetPasswordUrl`), `expire_password`, admin role
  assignments (duplicate: 409 `E0000090`), and revoking the consent grants and the refresh
  tokens one OAuth client holds for a user (`/clients/{clientId}/grants`, `.../tokens`: 204,
  nothing left to revoke included).
- `GET /api/v1/logs`: polling requests (no `until`: a `next` link on every page, even empty)
  and bounded ones (`since` and `until`: no `next` link on the last page); `limit`; a
  `filter` of `eq` comparisons on `eventType`, `target.id` and `actor.id` joined by `and` /
  `or` with parentheses. Other filters are refused with 400 `E0000031`, malformed ones with
  `E0000053`, `q` and a descending `sortOrder` (which the connector does not send) with `E0000031`.
- Every API answer carries `X-Rate-Limit-Limit/Remaining/Reset` (epoch seconds); with
  `rate_limit` set, the request over the limit in a minute is 429 `E0000047`.

Errors have Okta's shape (`errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`).
The fake does not write System Log events for its own API calls: tests add the events they need.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .base import FakeRequest, FakeResponse, FakeService, route

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME = 3600  # "The lifetime for this token is fixed at one hour."
ASSERTION_MAX_AHEAD = 3600  # `exp` "must be a maximum of only one hour in the future"
RATE_WINDOW = 60

# Role types and the labels Okta answers for them (standard roles).
ROLE_LABELS = {
    "SUPER_ADMIN": "Super Organization administrator",
    "ORG_ADMIN": "Organization administrator",
    "APP_ADMIN": "Application administrator",
    "USER_ADMIN": "Group administrator",
    "HELP_DESK_ADMIN": "Help Desk administrator",
    "READ_ONLY_ADMIN": "Read-only administrator",
    "MOBILE_ADMIN": "Mobile administrator",
    "API_ACCESS_MANAGEMENT_ADMIN": "API Access Management administrator",
    "REPORT_ADMIN": "Report administrator",
    "GROUP_MEMBERSHIP_ADMIN": "Group membership administrator",
    "WORKFLOWS_ADMIN": "Workflows administrator",
    "ACCESS_CERTIFICATIONS_ADMIN": "Access certifications administrator",
    "ACCESS_REQUESTS_ADMIN": "Access requests administrator",
}
# Unenrolling one of these unenrolls the others of Okta Verify too (the Factors API note).
OKTA_VERIFY = frozenset({"push", "signed_nonce", "token:software:totp"})
FILTER_ATTRIBUTES = frozenset({"eventType", "target.id", "actor.id"})
SCIM_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "pr", "gt", "ge", "lt", "le"})

# Okta's own texts (the error-code catalogues and the System Log API reference).
ACCESS_DENIED = "You do not have permission to perform the requested action"
TOO_MANY_REQUESTS = "API call exceeded rate limit due to too many requests."
DUPLICATE_ROLE = "The role specified is already assigned to the user."
BAD_DATE = (
    "Api validation failed: 'since': The date format in your query is not recognized. "
    "Please enter dates using ISO8601 string format."
)
UNSUPPORTED_GRANT = (
    "The authorization grant type is not supported by the authorization server. "
    "Configured grant types: [client_credentials]."
)
ILLEGAL_SCOPES = "The following scopes are not allowed for this request:"
INVALID_AUDIENCE = (
    "The audience claim for client_assertion must be the endpoint invoked for the request."
)
INVALID_TOKEN_CHALLENGE = (
    'Bearer error="invalid_token", error_description="The token is not valid."'
)
INSUFFICIENT_SCOPE_CHALLENGE = (
    'Bearer error="insufficient_scope", '
    'error_description="The access token provided does not contain the required scopes."'
)


def okta_error(code: str, summary: str, causes: list[str] | None = None) -> dict[str, Any]:
    """An error body in Okta's shape."""
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae" + _random_id(22),
        "errorCauses": [{"errorSummary": cause} for cause in causes or []],
    }


def _random_id(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _timestamp(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class FilterError(Exception):
    def __init__(self, code: str, summary: str) -> None:
        super().__init__(summary)
        self.code, self.summary = code, summary


Matcher = Callable[[dict[str, Any]], bool]
_FILTER_TOKEN = re.compile(
    r'\s*(?:(?P<paren>[()])|"(?P<value>(?:[^"\\]|\\.)*)"|(?P<word>[A-Za-z_][\w.]*))'
)


class LogFilter:
    """The System Log `filter` subset the fake supports, read into a predicate on an event:
    `attribute eq "value"` on `FILTER_ATTRIBUTES`, joined by `and` / `or`, in parentheses."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(self.text):
            match = _FILTER_TOKEN.match(self.text, position)
            if match is None:
                raise self._invalid(f"at position {position}")
            if match["paren"]:
                self.tokens.append((match["paren"], match["paren"]))
            elif match["value"] is not None:
                self.tokens.append(("value", json.loads(f'"{match["value"]}"')))
            else:
                self.tokens.append(("word", match["word"]))
            position = match.end()
        self.tokens.append(("end", ""))
        self.at = 0
        self.matches = self._either()
        self._take("end")

    def _invalid(self, where: str) -> FilterError:
        return FilterError("E0000053", f"Invalid filter '{self.text}': {where}")

    def _take(self, kind: str) -> str:
        found, value = self.tokens[self.at]
        if found != kind:
            raise self._invalid(f"unexpected '{value or 'end'}'")
        self.at += 1
        return value

    def _joined(self, keyword: str, operand: Callable[[], Matcher]) -> list[Matcher]:
        parts = [operand()]
        while self.tokens[self.at] == ("word", keyword):
            self.at += 1
            parts.append(operand())
        return parts

    def _either(self) -> Matcher:
        parts = self._joined("or", self._both)
        return lambda event: any(part(event) for part in parts)

    def _both(self) -> Matcher:
        parts = self._joined("and", self._comparison)
        return lambda event: all(part(event) for part in parts)

    def _comparison(self) -> Matcher:
        if self.tokens[self.at][0] == "(":
            self._take("(")
            inner = self._either()
            self._take(")")
            return inner
        attribute, operator = self._take("word"), self._take("word")
        if operator not in SCIM_OPERATORS:
            raise self._invalid(f"Unrecognized attribute operator '{operator}'")
        value = self._take("value")
        if attribute not in FILTER_ATTRIBUTES or operator != "eq":
            raise FilterError(
                "E0000031",
                "The supplied combination of operator and field is not currently supported. "
                f"Operator: {operator}, Field: {attribute}",
            )
        if attribute == "eventType":
            return lambda event: event["eventType"] == value
        if attribute == "actor.id":
            return lambda event: event["actor"]["id"] == value
        return lambda event: any(target["id"] == value for target in event["target"])


def api(method: str, pattern: str, scope: str) -> Callable[..., Any]:
    """A Management API route: rate-limited, authenticated and scope-checked like Okta's."""

    def mark(handler: Callable[[FakeOkta, FakeRequest], FakeResponse]) -> Any:
        @functools.wraps(handler)
        def guarded(self: FakeOkta, request: FakeRequest) -> FakeResponse:
            answer = self._refusal(request, scope) or handler(self, request)
            answer.headers.update(self._rate_headers())
            return answer

        return route(method, pattern)(guarded)

    return mark


def user_api(method: str, subpath: str, scope: str) -> Callable[..., Any]:
    """A route under `/api/v1/users/{id or login}`: the handler gets the user, and a user
    who is not there is Okta's 404 `E0000007`."""

    def mark(handler: Callable[[FakeOkta, FakeRequest, dict[str, Any]], FakeResponse]) -> Any:
        @functools.wraps(handler)
        def with_user(self: FakeOkta, request: FakeRequest) -> FakeResponse:
            reference = unquote(request.params["user"])
            user = self.users.get(reference) or next(
                (u for u in self.users.values() if u["profile"]["login"] == reference.lower()),
                None,
            )
            if user is None:
                summary = f"Not found: Resource not found: {reference} (User)"
                return FakeResponse(404, okta_error("E0000007", summary))
            return handler(self, request, user)

        return api(method, rf"/api/v1/users/(?P<user>[^/]+){subpath}", scope)(with_user)

    return mark


class FakeOkta(FakeService):
    """One Okta org. Test controls: `register_app`, `add_api_token`, `end_access_tokens`,
    `add_user`, `add_factor`, `add_role`, `give_sessions`, `give_consent`, `log_event`,
    `rate_limit`; state: `users`, `factors`, `roles`, `sessions`, `oauth_tokens`,
    `revocations`, `reset_urls`, `consents` and `refresh_tokens` (user id -> the OAuth client
    ids holding a grant, a refresh token), `events`."""

    def __init__(self) -> None:
        super().__init__()
        self.apps: dict[str, tuple[KeySet, frozenset[str]]] = {}
        self.api_tokens: set[str] = set()
        self.access_tokens: dict[str, tuple[frozenset[str], float]] = {}
        self.used_jtis: set[str] = set()
        self.users: dict[str, dict[str, Any]] = {}
        self.factors: dict[str, list[dict[str, Any]]] = {}
        self.roles: dict[str, list[dict[str, Any]]] = {}
        self.sessions: dict[str, int] = {}
        self.oauth_tokens: dict[str, int] = {}
        self.revocations: list[dict[str, Any]] = []  # one per sessions DELETE
        self.reset_urls: dict[str, str] = {}  # user id -> the live reset_password URL
        self.consents: dict[str, set[str]] = {}
        self.refresh_tokens: dict[str, set[str]] = {}
        self.events: list[dict[str, Any]] = []
        self.rate_limit = 600  # requests a minute, org-wide (Okta's limits are per endpoint)
        self._window_start = 0.0
        self._window_count = 0

    # --- test controls ----------------------------------------------------------------------

    def register_app(
        self, client_id: str, public_keys: list[dict[str, Any]], scopes: set[str]
    ) -> None:
        """A service app with `private_key_jwt` client authentication and granted scopes."""
        self.apps[client_id] = (KeySet.import_key_set({"keys": public_keys}), frozenset(scopes))

    def add_api_token(self, value: str) -> None:
        self.api_tokens.add(value)

    def add_user(
        self,
        login: str,
        first_name: str = "",
        last_name: str = "",
        *,
        status: str = "ACTIVE",
        **profile: Any,
    ) -> dict[str, Any]:
        """A user; `profile` adds attributes such as `secondEmail` or `mobilePhone`."""
        login = login.lower()
        user_id = "00u" + _random_id(17)
        created = _timestamp(self.now())
        self.users[user_id] = {
            "id": user_id,
            "status": status,
            "created": created,
            "activated": created,
            "statusChanged": created,
            "lastLogin": None,
            "lastUpdated": created,
            "passwordChanged": created,
            "type": {"id": "oty" + _random_id(17)},
            "profile": {
                "firstName": first_name,
                "lastName": last_name,
                "email": profile.pop("email", login),
                "login": login,
                **profile,
            },
            "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": f"{self.url}/api/v1/users/{user_id}"}},
        }
        self.factors[user_id], self.roles[user_id] = [], []
        return self.users[user_id]

    def add_factor(
        self, user_id: str, factor_type: str, provider: str = "OKTA", **profile: Any
    ) -> dict[str, Any]:
        created = _timestamp(self.now())
        factor = {
            "id": factor_type.split(":")[-1][:4] + _random_id(16),
            "factorType": factor_type,
            "provider": provider,
            "vendorName": provider,
            "status": "ACTIVE",
            "created": created,
            "lastUpdated": created,
            "profile": profile,
        }
        self.factors[user_id].append(factor)
        return factor

    def add_role(self, user_id: str, role_type: str, **custom: str) -> dict[str, Any]:
        """A role assignment; `CUSTOM` takes `role` and `resource-set` as keywords."""
        created = _timestamp(self.now())
        assignment = {
            "id": "ra1" + _random_id(17),
            "label": ROLE_LABELS.get(role_type, custom.get("role", role_type)),
            "type": role_type,
            "status": "ACTIVE",
            "created": created,
            "lastUpdated": created,
            "assignmentType": "USER",
            **custom,
            "_links": {"assignee": {"href": f"{self.url}/api/v1/users/{user_id}"}},
        }
        self.roles[user_id].append(assignment)
        return assignment

    def end_access_tokens(self) -> None:
        """Okta ends the issued access tokens before their hour (a key rotated, an app
        deactivated): the next call with one is 401 `E0000011`."""
        self.access_tokens.clear()

    def give_sessions(self, user_id: str, sessions: int = 1, oauth_tokens: int = 1) -> None:
        self.sessions[user_id] = self.sessions.get(user_id, 0) + sessions
        self.oauth_tokens[user_id] = self.oauth_tokens.get(user_id, 0) + oauth_tokens

    def give_consent(self, user_id: str, client_id: str) -> None:
        """The user consented to an OAuth client, which holds a refresh token for them."""
        self.consents.setdefault(user_id, set()).add(client_id)
        self.refresh_tokens.setdefault(user_id, set()).add(client_id)

    def log_event(
        self,
        event_type: str,
        *,
        actor: dict[str, Any],
        targets: list[dict[str, Any]],
        outcome: str = "SUCCESS",
        debug_data: dict[str, Any] | None = None,
        display_message: str = "",
    ) -> dict[str, Any]:
        """Append a System Log event published now (the fake's clock)."""
        event = {
            "uuid": f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-11f0-{secrets.token_hex(6)}",
            "published": _timestamp(self.now()),
            "eventType": event_type,
            "version": "0",
            "severity": "INFO",
            "displayMessage": display_message or event_type,
            "actor": actor,
            "outcome": {"result": outcome},
            "target": targets,
            "debugContext": {"debugData": debug_data or {}},
        }
        self.events.append(event)
        return event

    # --- OAuth 2.0 token endpoint -----------------------------------------------------------

    @route("POST", r"/oauth2/v1/token")
    def token(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", UNSUPPORTED_GRANT)
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return _oauth_error(400, "invalid_request", "The client_assertion_type is invalid.")
        failure, client_id = self._verify_assertion(form.get("client_assertion", ""))
        if failure:
            return _oauth_error(401, "invalid_client", failure)
        requested = form.get("scope", "").split()
        if not requested:
            return _oauth_error(400, "invalid_scope", "No scopes were requested.")
        granted = self.apps[client_id][1]
        refused = [scope for scope in requested if scope not in granted]
        if refused:
            return _oauth_error(400, "invalid_scope", f"{ILLEGAL_SCOPES} {refused}.")
        access_token = "eyJraWQ" + secrets.token_urlsafe(48)
        self.access_tokens[access_token] = (frozenset(requested), self.now() + TOKEN_LIFETIME)
        return FakeResponse(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "access_token": access_token,
                "scope": " ".join(requested),
            },
            {"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"},
        )

    def _verify_assertion(self, assertion: str) -> tuple[str, str]:
        """(the `error_description` Okta answers, or "", and the client id)."""
        try:
            unverified = jws.extract_compact(assertion.encode())
            header, claims = unverified.headers(), json.loads(unverified.payload)
        except (JoseError, ValueError):
            return "The parsing of the client_assertion failed.", ""
        client_id = str(claims.get("iss", ""))
        if client_id not in self.apps:
            return "The issuer claim for client_assertion is not a valid client_id.", ""
        if claims.get("sub") != client_id:
            return "The subject claim for client_assertion is not a valid client_id.", ""
        keys = self.apps[client_id][0]
        kid = header.get("kid")
        if (kid is None and len(keys.keys) > 1) or (
            kid is not None and kid not in {key.kid for key in keys.keys}
        ):
            return "The client_assertion JWT kid is invalid.", ""
        try:
            claims = jwt.decode(assertion, keys, algorithms=["RS256", "ES256"]).claims
        except JoseError:
            return "The client_assertion signature is invalid.", ""
        now = self.now()
        if claims.get("aud") != f"{self.url}/oauth2/v1/token":
            return INVALID_AUDIENCE, ""
        if not isinstance(claims.get("exp"), int | float):
            return "The client_assertion must contain the 'exp' claim as seconds since epoch.", ""
        if claims["exp"] <= now:
            return "The client_assertion token is expired.", ""
        if claims["exp"] > now + ASSERTION_MAX_AHEAD:
            return "The client_assertion token has an expiration too far into the future.", ""
        if claims.get("iat", now) > now + 1:
            return "The client_assertion token must be issued before the current time.", ""
        jti = claims.get("jti")
        if jti is not None:
            if jti in self.used_jtis:
                return "The client_assertion token has already been used.", ""
            self.used_jtis.add(jti)
        return "", client_id

    # --- authentication, scopes, rate limit -------------------------------------------------

    def _refusal(self, request: FakeRequest, scope: str) -> FakeResponse | None:
        if self.now() >= self._window_start + RATE_WINDOW:
            self._window_start, self._window_count = float(int(self.now())), 0
        self._window_count += 1
        if self._window_count > self.rate_limit:
            return FakeResponse(429, okta_error("E0000047", TOO_MANY_REQUESTS))
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme == "SSWS" and credential in self.api_tokens:
            return None
        granted, expires_at = self.access_tokens.get(credential, (frozenset(), 0.0))
        if scheme != "Bearer" or expires_at <= self.now():
            return FakeResponse(
                401,
                okta_error("E0000011", "Invalid token provided"),
                {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
            )
        if scope not in granted and scope.replace(".read", ".manage") not in granted:
            return FakeResponse(
                403,
                okta_error("E0000006", ACCESS_DENIED),
                {"WWW-Authenticate": INSUFFICIENT_SCOPE_CHALLENGE},
            )
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(max(0, self.rate_limit - self._window_count)),
            "X-Rate-Limit-Reset": str(int(self._window_start + RATE_WINDOW)),
        }

    # --- users ------------------------------------------------------------------------------

    @user_api("GET", "", "okta.users.read")
    def user_get(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        return FakeResponse(200, user)

    @user_api("POST", "", "okta.users.manage")
    def user_update(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        """The partial update: the attributes given are set (`null` clears one), the others
        keep their values."""
        for name, value in ((request.json() or {}).get("profile") or {}).items():
            if value is None:
                user["profile"].pop(name, None)
            else:
                user["profile"][name] = value
        user["lastUpdated"] = _timestamp(self.now())
        return FakeResponse(200, user)

    @user_api("POST", "/lifecycle/unlock", "okta.users.manage")
    def unlock(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        if user["status"] != "LOCKED_OUT":
            summary = "This operation is not allowed in the user's current status."
            return FakeResponse(403, okta_error("E0000038", summary))
        user["status"] = "ACTIVE"
        return FakeResponse(200, {})

    @user_api("DELETE", "/clients/(?P<client>[^/]+)/grants", "okta.users.manage")
    def client_grants_revoke(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        self.consents.get(user["id"], set()).discard(request.params["client"])
        return FakeResponse(204)

    @user_api("DELETE", "/clients/(?P<client>[^/]+)/tokens", "okta.users.manage")
    def client_tokens_revoke(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        self.refresh_tokens.get(user["id"], set()).discard(request.params["client"])
        return FakeResponse(204)

    @user_api("GET", "/factors", "okta.users.read")
    def factors_list(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        return FakeResponse(200, self.factors[user["id"]])

    @user_api("DELETE", "/factors/(?P<factor>[^/]+)", "okta.users.manage")
    def factor_delete(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        enrolled = self.factors[user["id"]]
        factor = next((f for f in enrolled if f["id"] == request.params["factor"]), None)
        if factor is None:
            summary = f"Not found: Resource not found: {request.params['factor']} (UserFactor)"
            return FakeResponse(404, okta_error("E0000007", summary))
        self.factors[user["id"]] = [f for f in enrolled if not _unenrolled_with(f, factor)]
        return FakeResponse(204)

    @user_api("POST", "/lifecycle/reset_factors", "okta.users.manage")
    def factors_reset(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        self.factors[user["id"]] = []
        return FakeResponse(200, {})

    @user_api("DELETE", "/sessions", "okta.users.manage")
    def sessions_clear(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        with_tokens = request.arg("oauthTokens", "false") == "true"
        self.revocations.append(
            {
                "user": user["id"],
                "sessions": self.sessions.pop(user["id"], 0),
                "oauth_tokens": self.oauth_tokens.pop(user["id"], 0) if with_tokens else 0,
                "forget_devices": request.arg("forgetDevices", "true") == "true",
            }
        )
        return FakeResponse(204)

    @user_api("POST", "/lifecycle/reset_password", "okta.users.manage")
    def password_reset(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        send_email = request.arg("sendEmail")
        if send_email not in ("true", "false"):
            summary, cause = "Api validation failed: sendEmail", "sendEmail: is required"
            return FakeResponse(400, okta_error("E0000001", summary, [cause]))
        user["status"] = "RECOVERY"
        self.reset_urls[user["id"]] = f"{self.url}/reset_password/{_random_id(20)}"
        if send_email == "true":
            return FakeResponse(200, {})
        return FakeResponse(200, {"resetPasswordUrl": self.reset_urls[user["id"]]})

    @user_api("POST", "/lifecycle/expire_password", "okta.users.manage")
    def password_expire(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        user["status"] = "PASSWORD_EXPIRED"
        return FakeResponse(200, user)

    # --- admin roles ------------------------------------------------------------------------

    @user_api("GET", "/roles", "okta.roles.read")
    def roles_list(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        return FakeResponse(200, self.roles[user["id"]])

    @user_api("POST", "/roles", "okta.roles.manage")
    def role_assign(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        body = request.json() or {}
        role_type = body.get("type")
        custom = {key: body[key] for key in ("role", "resource-set") if key in body}
        if role_type not in ROLE_LABELS and not (role_type == "CUSTOM" and len(custom) == 2):
            return FakeResponse(400, okta_error("E0000001", "Api validation failed: type"))
        if any(
            held["type"] == role_type and all(held.get(k) == v for k, v in custom.items())
            for held in self.roles[user["id"]]
        ):
            return FakeResponse(409, okta_error("E0000090", DUPLICATE_ROLE))
        return FakeResponse(201, self.add_role(user["id"], role_type, **custom))

    @user_api("DELETE", "/roles/(?P<role>[^/]+)", "okta.roles.manage")
    def role_unassign(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        held = self.roles[user["id"]]
        kept = [assignment for assignment in held if assignment["id"] != request.params["role"]]
        if len(kept) == len(held):
            summary = f"Not found: Resource not found: {request.params['role']} (Role)"
            return FakeResponse(404, okta_error("E0000007", summary))
        self.roles[user["id"]] = kept
        return FakeResponse(204)

    # --- System Log -------------------------------------------------------------------------

    @api("GET", r"/api/v1/logs", "okta.logs.read")
    def logs(self, request: FakeRequest) -> FakeResponse:
        if request.arg("q") is not None or request.arg("sortOrder", "ASCENDING") != "ASCENDING":
            return FakeResponse(400, okta_error("E0000031", "Invalid search criteria."))
        try:
            since = _epoch(request.arg("since") or _timestamp(self.now() - 7 * 86400))
            until = _epoch(request.arg("until")) if request.arg("until") else None
        except ValueError:
            return FakeResponse(400, okta_error("E0000001", BAD_DATE))
        try:
            matches = LogFilter(request.arg("filter")).matches if request.arg("filter") else None
        except FilterError as error:
            return FakeResponse(400, okta_error(error.code, error.summary))
        limit = max(0, min(1000, int(request.arg("limit", "100") or 100)))
        chosen = list(self._events_after(request.arg("after"), since, until, matches))
        page = chosen[:limit]
        links = [f'<{self._logs_url(request, None)}>; rel="self"']
        cursor = page[-1]["uuid"] if page else request.arg("after")
        if until is None or len(chosen) > limit:
            links.append(f'<{self._logs_url(request, cursor)}>; rel="next"')
        return FakeResponse(200, page, {"Link": ", ".join(links)})

    def _events_after(
        self, after: str | None, since: float, until: float | None, matches: Matcher | None
    ) -> Iterator[dict[str, Any]]:
        """Events in persistence order, past the `after` cursor, inside the time bounds."""
        passed_cursor = after is None
        for event in self.events:
            if not passed_cursor:
                passed_cursor = event["uuid"] == after
                continue
            published = _epoch(event["published"])
            if published < since or (until is not None and published >= until):
                continue
            if matches is None or matches(event):
                yield event

    def _logs_url(self, request: FakeRequest, after: str | None) -> str:
        params = {key: values[-1] for key, values in request.query.items() if key != "after"}
        if after is not None:
            params["after"] = after
        return f"{self.url}/api/v1/logs?{urlencode(params)}"

    # --- Okta's answers for unknown paths and methods ---------------------------------------

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(404, okta_error("E0000008", "The requested path was not found"))

    def method_not_allowed(self, request: FakeRequest) -> FakeResponse:
        summary = "The endpoint does not support the provided HTTP method"
        return FakeResponse(405, okta_error("E0000022", summary))


def _unenrolled_with(factor: dict[str, Any], removed: dict[str, Any]) -> bool:
    """Whether unenrolling `removed` takes `factor` with it: itself, or, for Okta Verify push
    and FastPass, every Okta Verify factor of the user."""
    okta_verify = {factor["factorType"], removed["factorType"]} <= OKTA_VERIFY
    both_okta = factor["provider"] == removed["provider"] == "OKTA"
    cascades = removed["factorType"] in {"push", "signed_nonce"} and okta_verify and both_okta
    return factor is removed or cascades


def _oauth_error(status: int, error: str, description: str) -> FakeResponse:
    return FakeResponse(status, {"error": error, "error_description": description})


@pytest.fixture
def okta_fake() -> Iterator[FakeOkta]:
    with FakeOkta() as fake:
        yield fake
