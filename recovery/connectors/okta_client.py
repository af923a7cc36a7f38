"""The Okta Management API, in the vocabulary of `cloud.py`.

`OktaClient` is what the Okta connector calls: the user (and unlocking them), their factors,
their sessions and OAuth tokens, a password reset the owner completes, their admin role
assignments, the System Log events that R-35's re-establishment window watches, and what
undoing such an event needs (a profile's previous recovery addresses, an OAuth client's
consent). Every call goes through one
`VendorSession`, so failures arrive as `VendorError` kinds.

Plain REST rather than the `okta` SDK: its version 3 is asyncio/aiohttp only, and the workers
are synchronous. Two ways to authenticate, both handed in as values (the caller reads them from
an environment variable or a file named in the connector's configuration, never the database):

- `OktaServiceApp`: an OAuth 2.0 service app authenticating with `private_key_jwt`. Each token
  request carries a fresh client assertion (`iss` = `sub` = client id, `aud` = the token
  endpoint, five minutes of life, a one-time `jti`); the access token (one hour) is reused until
  a minute before it expires, or until Okta refuses it (401: one fresh token, once).
- `OktaApiToken`: an `SSWS` API token, the fallback Okta still documents. It acts with every
  right of the admin who created it, so it is the second choice.

Okta throttles with `X-Rate-Limit-Reset` (epoch seconds) rather than `Retry-After`; the client
reads the wait from it. The reset link `password_reset_link` returns is the credential itself:
it lives only in `TemporaryPass.secret`, which no repr, log line or error message carries.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from .cloud import (
    AuthMethod,
    ChangeKind,
    DirectoryUser,
    ReportedChange,
    RoleAssignment,
    TemporaryPass,
)
from .vendor_http import (
    AUTH,
    CONFLICT,
    NOT_FOUND,
    THROTTLED,
    TIMEOUT,
    UNAVAILABLE,
    VendorError,
    VendorSession,
)

# `manage` scopes include their `read` counterparts (Okta's scope hierarchy).
OKTA_SCOPES = ("okta.users.manage", "okta.roles.manage", "okta.logs.read")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300
TOKEN_EARLY_RENEWAL = 60
SIGNING_ALGORITHMS = {"RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
STANDARD_ROLES = frozenset(
    {
        "SUPER_ADMIN",
        "ORG_ADMIN",
        "APP_ADMIN",
        "USER_ADMIN",
        "HELP_DESK_ADMIN",
        "READ_ONLY_ADMIN",
        "MOBILE_ADMIN",
        "API_ACCESS_MANAGEMENT_ADMIN",
        "REPORT_ADMIN",
        "GROUP_MEMBERSHIP_ADMIN",
        "WORKFLOWS_ADMIN",
        "ACCESS_CERTIFICATIONS_ADMIN",
        "ACCESS_REQUESTS_ADMIN",
    }
)
# A user in these statuses can sign in (RECOVERY and PASSWORD_EXPIRED after a reset).
SIGN_IN_STATUSES = frozenset({"ACTIVE", "PASSWORD_EXPIRED", "RECOVERY", "LOCKED_OUT"})
PHISHING_RESISTANT_FACTORS = frozenset({"webauthn", "u2f"})
# The profile attributes Okta recovers an account through.
RECOVERY_ATTRIBUTES = frozenset({"email", "secondEmail", "mobilePhone"})


@dataclass(frozen=True)
class OktaApiToken:
    value: str = field(repr=False)


@dataclass(frozen=True)
class OktaServiceApp:
    client_id: str
    private_key: str = field(repr=False)  # PEM, or a JWK as JSON
    key_id: str | None = None  # the registered key's `kid`; Okta needs it when the app has several
    scopes: tuple[str, ...] = OKTA_SCOPES


OktaCredentials = OktaApiToken | OktaServiceApp


@dataclass(frozen=True)
class OktaUser(DirectoryUser):
    """The user with Okta's lifecycle status (`LOCKED_OUT`, `RECOVERY`, `SUSPENDED`, ...): it
    decides what a recovery may do, and a revert reads it back."""

    status: str = ""


@dataclass(frozen=True)
class _EventRule:
    kind: ChangeKind
    user_is: Literal["actor", "target"]  # where the user appears when the change is on them


# System Log event types (Okta's event-type catalogue) that are R-35 changes on the account.
EVENT_RULES = {
    "user.mfa.factor.activate": _EventRule(ChangeKind.MFA_ENROLLED, "target"),
    "user.account.update_profile": _EventRule(ChangeKind.ADDRESS_CHANGED, "target"),
    "user.account.update_primary_email": _EventRule(ChangeKind.ADDRESS_CHANGED, "target"),
    "user.account.update_secondary_email": _EventRule(ChangeKind.ADDRESS_CHANGED, "target"),
    "app.oauth2.as.consent.grant": _EventRule(ChangeKind.OAUTH_CONSENT, "actor"),
    "app.oauth2.consent.grant": _EventRule(ChangeKind.OAUTH_CONSENT, "actor"),
    "user.account.privilege.grant": _EventRule(ChangeKind.PRIVILEGED_ROLE, "target"),
}


class OktaClient:
    """The Okta org at `org_url` (`https://example.okta.com`), as one service app or API token."""

    def __init__(
        self,
        org_url: str,
        credentials: OktaCredentials,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        max_wait: float = 60.0,  # Okta's rate-limit windows are a minute: no wait is longer
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        if isinstance(credentials, OktaServiceApp):
            token: Callable[[bool], str] = _ServiceAppTokens(org_url, credentials, timeout, clock)
            scheme, self._own_actor = "Bearer", credentials.client_id
        else:
            token, scheme, self._own_actor = (lambda fresh: credentials.value), "SSWS", None
        self._session = VendorSession(
            org_url,
            token,
            scheme=scheme,
            error_reader=_okta_error,
            retry_after=self._rate_limit_wait,
            timeout=timeout,
            attempts=attempts,
            max_wait=max_wait,
            sleep=sleep,
        )

    # --- users and authenticators -----------------------------------------------------------

    def user_get(self, user: str) -> OktaUser:
        """The user by Okta id or login."""
        found = self._session.json("GET", _user_path(user))
        profile = found["profile"]
        name = " ".join(filter(None, (profile.get("firstName"), profile.get("lastName"))))
        return OktaUser(
            id=found["id"],
            username=profile["login"],
            display_name=name or profile.get("displayName") or profile["login"],
            enabled=found["status"] in SIGN_IN_STATUSES,
            status=found["status"],
        )

    def unlock(self, user_id: str) -> None:
        """A `LOCKED_OUT` user back to `ACTIVE` with their current password (Okta-mastered
        users only; Okta refuses other statuses with 403 `E0000038`)."""
        self._post(f"{_user_path(user_id)}/lifecycle/unlock")

    def profile_update(self, user_id: str, attributes: dict[str, Any]) -> None:
        """Set these profile attributes and leave the others (a POST is Okta's partial update;
        `None` clears an attribute). Repeating it sets the same values."""
        self._post(_user_path(user_id), json={"profile": attributes})

    def factors_list(self, user_id: str) -> list[AuthMethod]:
        return [
            AuthMethod(
                id=factor["id"],
                kind=factor["factorType"],
                label=factor.get("vendorName") or factor.get("provider", ""),
                created_at=_datetime(factor["created"]) if factor.get("created") else None,
                phishing_resistant=factor["factorType"] in PHISHING_RESISTANT_FACTORS,
            )
            for factor in self._session.json("GET", f"{_user_path(user_id)}/factors")
        ]

    def factor_delete(self, user_id: str, factor_id: str) -> None:
        """Unenroll one factor; one already gone is done."""
        path = f"{_user_path(user_id)}/factors/{quote(factor_id, safe='')}"
        self._delete_if_present(path)

    def factors_reset(self, user_id: str) -> None:
        """Unenroll every factor (repeating it changes nothing more)."""
        self._post(f"{_user_path(user_id)}/lifecycle/reset_factors")

    def sessions_clear(self, user_id: str) -> None:
        """End every Okta session, revoke the OAuth/OIDC tokens issued to the user, and forget
        remembered devices (Classic Engine does not by default)."""
        params = {"oauthTokens": "true", "forgetDevices": "true"}
        self._session.request("DELETE", f"{_user_path(user_id)}/sessions", params=params)

    def client_grants_revoke(self, user_id: str, client_id: str) -> None:
        """Withdraw the user's consent to one OAuth client (`0oa...`) and revoke the refresh
        tokens it holds for them; nothing left to revoke is done."""
        client = f"{_user_path(user_id)}/clients/{quote(client_id, safe='')}"
        self._delete_if_present(f"{client}/grants")
        self._delete_if_present(f"{client}/tokens")

    # --- password ---------------------------------------------------------------------------

    def password_reset_link(self, user_id: str) -> TemporaryPass:
        """A one-time reset link the owner completes (Okta e-mails nothing, the agent sees no
        password). The user is in RECOVERY until then; repeating it issues a new link."""
        answer = self._post(
            f"{_user_path(user_id)}/lifecycle/reset_password", params={"sendEmail": "false"}
        )
        url = answer["resetPasswordUrl"]
        fingerprint = hashlib.sha256(url.encode()).hexdigest()[:16]
        return TemporaryPass(id=f"okta-reset:{fingerprint}", secret=url, usable_once=True)

    def password_expire(self, user_id: str) -> None:
        """The user must choose a new password at their next sign-in."""
        self._post(f"{_user_path(user_id)}/lifecycle/expire_password")

    # --- admin roles ------------------------------------------------------------------------

    def roles_list(self, user_id: str) -> list[RoleAssignment]:
        return [
            _role_assignment(found) for found in self._session.json("GET", _roles_path(user_id))
        ]

    def role_unassign(self, user_id: str, assignment_id: str) -> None:
        """Remove one assignment; one already gone is done."""
        self._delete_if_present(f"{_roles_path(user_id)}/{quote(assignment_id, safe='')}")

    def role_assign(self, user_id: str, role_id: str, scope: str = "/") -> RoleAssignment:
        """Grant a standard role (`role_id` is its type) or a custom one (`role_id` the custom
        role, `scope` its resource set); an assignment already there is the answer (R-19's
        restore may run twice)."""
        if role_id in STANDARD_ROLES:
            body = {"type": role_id}
        else:
            body = {"type": "CUSTOM", "role": role_id, "resource-set": scope}
        try:
            return _role_assignment(self._post(_roles_path(user_id), json=body))
        except VendorError as error:
            if error.kind != CONFLICT:
                raise
            held = next(
                (a for a in self.roles_list(user_id) if (a.role_id, a.scope) == (role_id, scope)),
                None,
            )
            if held is None:  # a conflict of another kind (E0000268: assignments being changed)
                raise
            return held

    # --- System Log -------------------------------------------------------------------------

    def changes_since(
        self, user_id: str, since: datetime, *, page_size: int = 200
    ) -> list[ReportedChange]:
        """The R-35 changes the System Log reports on the user (Okta id) since `since`, oldest
        first. A polling query: every page has a `next` link, so reading stops at an empty
        page. Failed attempts and this service app's own actions are not changes."""
        changes = []
        for event in self._log_events(user_id, since, page_size):
            change = self._change(event, user_id)
            if change is not None:
                changes.append(change)
        return changes

    def _log_events(
        self, user_id: str, since: datetime, page_size: int
    ) -> Iterator[dict[str, Any]]:
        user = json.dumps(user_id)
        types = " or ".join(f"eventType eq {json.dumps(name)}" for name in EVENT_RULES)
        params: dict[str, Any] | None = {
            "since": since.astimezone(UTC).isoformat(timespec="milliseconds"),
            "filter": f"(actor.id eq {user} or target.id eq {user}) and ({types})",
            "limit": page_size,
        }
        url = "/api/v1/logs"
        while True:
            answer = self._session.request("GET", url, params=params)
            page = answer.json()
            if not page:
                return
            yield from page
            if "next" not in answer.links:
                return
            url, params = answer.links["next"]["url"], None

    def _change(self, event: dict[str, Any], user_id: str) -> ReportedChange | None:
        rule = EVENT_RULES.get(event["eventType"])
        actor = event.get("actor") or {}
        targets = event.get("target") or []
        if rule is None or (event.get("outcome") or {}).get("result") != "SUCCESS":
            return None
        if self._own_actor is not None and actor.get("id") == self._own_actor:
            return None
        on_user = (
            actor.get("id") == user_id
            if rule.user_is == "actor"
            else any(target.get("id") == user_id for target in targets)
        )
        if not on_user:
            return None
        target: dict[str, Any] = {
            "targets": [
                {"type": t.get("type"), "id": t.get("id"), "name": t.get("displayName")}
                for t in targets
                if t.get("id") != user_id
            ]
        }
        if event["eventType"] == "user.account.update_profile":
            previous = _recovery_attributes_changed(targets, user_id)
            if not previous:
                return None
            target["previous"] = previous
        if rule.kind == ChangeKind.PRIVILEGED_ROLE:
            debug = (event.get("debugContext") or {}).get("debugData") or {}
            target["privilege"] = debug.get("privilegeGranted", "")
        return ReportedChange(
            id=event["uuid"],
            at=_datetime(event["published"]),
            kind=rule.kind,
            summary=event.get("displayMessage") or event["eventType"],
            target=target,
        )

    # --- plumbing ---------------------------------------------------------------------------

    def _post(self, path: str, **kwargs: Any) -> Any:
        """A POST the client made safe to repeat (each operation says why). Okta's examples
        send a JSON content type even with no body; so does this."""
        headers = {"Content-Type": "application/json"}
        return self._session.json("POST", path, idempotent=True, headers=headers, **kwargs)

    def _delete_if_present(self, path: str) -> None:
        try:
            self._session.request("DELETE", path)
        except VendorError as error:
            if error.kind != NOT_FOUND:
                raise

    def _rate_limit_wait(self, answer: requests.Response) -> float | None:
        """Seconds until the `X-Rate-Limit-Reset` epoch, for a 429 only: Okta sends the header
        on every answer."""
        reset = answer.headers.get("X-Rate-Limit-Reset")
        if answer.status_code != 429 or reset is None:
            return None
        try:
            return max(0.0, float(reset) - self._clock())
        except ValueError:
            return None


class _ServiceAppTokens:
    """Access tokens for a service app: client credentials with a signed client assertion."""

    def __init__(
        self, org_url: str, app: OktaServiceApp, timeout: float, clock: Callable[[], float]
    ) -> None:
        self._app = app
        self._endpoint = f"{org_url.rstrip('/')}/oauth2/v1/token"
        self._key, self._algorithm = _signing_key(app.private_key, app.key_id)
        self._timeout = timeout
        self._clock = clock
        self._http = requests.Session()
        self._token = ""
        self._renew_at = 0.0

    def __call__(self, fresh: bool) -> str:
        if fresh or self._clock() >= self._renew_at:
            self._token, lifetime = self._request()
            self._renew_at = self._clock() + lifetime - TOKEN_EARLY_RENEWAL
        return self._token

    def _request(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": " ".join(self._app.scopes),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion(),
        }
        try:
            answer = self._http.post(
                self._endpoint,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.Timeout as error:
            raise VendorError(TIMEOUT, None, message="token endpoint did not answer") from error
        except requests.ConnectionError as error:
            raise VendorError(UNAVAILABLE, None, message=str(error)[:300]) from error
        if answer.ok:
            body = answer.json()
            return body["access_token"], float(body["expires_in"])
        code, message = _okta_error(_json_or_text(answer))
        status = answer.status_code
        kind = THROTTLED if status == 429 else UNAVAILABLE if status >= 500 else AUTH
        raise VendorError(kind, status, code, message)

    def _assertion(self) -> str:
        now = int(self._clock())
        header = {"alg": self._algorithm, **({"kid": self._key.kid} if self._key.kid else {})}
        claims = {
            "iss": self._app.client_id,
            "sub": self._app.client_id,
            "aud": self._endpoint,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(header, claims, self._key)


def _signing_key(private_key: str, key_id: str | None) -> tuple[RSAKey | ECKey, str]:
    """The app's private key, from PEM or a JWK as JSON, and the algorithm it signs with."""
    text = private_key.strip()
    source: str | dict[str, Any] = json.loads(text) if text.startswith("{") else text
    parameters = {"kid": key_id} if key_id else None
    key_types = (source["kty"],) if isinstance(source, dict) else ("RSA", "EC")
    for key_type in key_types:
        try:
            key = import_key(source, key_type, parameters)
        except (JoseError, ValueError):
            continue
        if isinstance(key, RSAKey | ECKey) and key.is_private:
            curve = key.as_dict().get("crv", "RSA")
            if curve in SIGNING_ALGORITHMS:
                return key, SIGNING_ALGORITHMS[curve]
    raise ValueError("the Okta service app key is not an RSA or EC (P-256/384/521) private key")


def _okta_error(body: Any) -> tuple[str, str]:
    """Okta's error shapes: the Management API's `errorCode`/`errorSummary` (with causes), the
    token endpoint's `error`/`error_description`."""
    if not isinstance(body, dict):
        return "", str(body)[:300]
    if "errorCode" in body:
        causes = [c.get("errorSummary", "") for c in body.get("errorCauses") or []]
        message = "; ".join(filter(None, [body.get("errorSummary", ""), *causes]))
        return body["errorCode"], message[:300]
    return body.get("error", ""), str(body.get("error_description", ""))[:300]


def _json_or_text(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return answer.text


def _user_path(user: str) -> str:
    return f"/api/v1/users/{quote(user, safe='')}"


def _roles_path(user_id: str) -> str:
    return f"{_user_path(user_id)}/roles"


def _role_assignment(found: dict[str, Any]) -> RoleAssignment:
    custom = found["type"] == "CUSTOM"
    return RoleAssignment(
        id=found["id"],
        role_id=found["role"] if custom else found["type"],
        role_name=found.get("label") or found["type"],
        scope=found["resource-set"] if custom else "/",
    )


def _recovery_attributes_changed(targets: list[dict[str, Any]], user_id: str) -> dict[str, Any]:
    """The recovery attributes a profile update changed, with their previous values."""
    for target in targets:
        if target.get("id") != user_id:
            continue
        details = target.get("changeDetails") or {}
        before, after = details.get("from") or {}, details.get("to") or {}
        return {
            name: before.get(name)
            for name in RECOVERY_ATTRIBUTES
            if name in before or name in after
            if before.get(name) != after.get(name)
        }
    return {}


def _datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
