"""Microsoft Graph (v1.0), as the Entra ID connector needs it, in the vocabulary of `cloud.py`.

Plain REST through `VendorSession` (token refresh on 401, `Retry-After`, bounded retries), with
app-only tokens from msal's client-credentials flow. msgraph-sdk is not used: it is async-only
and large, and these twelve calls need none of it.

Every call answers a `cloud.py` type or raises `VendorError` whose `code` and `message` are
Graph's (`Authorization_RequestDenied`, `Request_ResourceNotFound`, `badRequest` …). Deletes
are idempotent: something already gone (404) counts as deleted, so a connector that crashed
mid-sequence can run it again. Creating a role assignment that exists answers the existing one.

The client secret is passed in by the caller, which reads it from the environment variable the
tenant's configuration names; it is handed to msal and kept nowhere else, so neither `repr` nor
an error message can carry it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msal
import requests

from .cloud import (
    MAX_PASS_MINUTES,
    AuthMethod,
    ChangeKind,
    DirectoryUser,
    ReportedChange,
    RoleAssignment,
    TemporaryPass,
)
from .vendor_http import (
    AUTH,
    NOT_FOUND,
    REJECTED,
    UNAVAILABLE,
    VendorError,
    VendorHttp,
    VendorSession,
)

AUTHORITY_HOST = "https://login.microsoftonline.com"
GRAPH_URL = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"

# a temporary credential lives at most 8 hours.

# The application permission each operation needs, least privileged (docs/connectors.md).
PERMISSIONS = {
    "user_get": "User.Read.All",
    "user_enabled_set": "User.EnableDisableAccount.All",
    "temporary_pass_create": "UserAuthenticationMethod.ReadWrite.All",
    "temporary_pass_delete": "UserAuthenticationMethod.ReadWrite.All",
    "methods_list": "UserAuthenticationMethod.ReadWrite.All",
    "method_delete": "UserAuthenticationMethod.ReadWrite.All",
    "sessions_revoke": "User.RevokeSessions.All",
    "role_assignments_list": "RoleManagement.ReadWrite.Directory",
    "role_assignment_delete": "RoleManagement.ReadWrite.Directory",
    "role_assignment_create": "RoleManagement.ReadWrite.Directory",
    "changes_since": "AuditLog.Read.All",
    "risk_get": "IdentityRiskyUser.Read.All",
}

# Method kinds (the `@odata.type` without `#microsoft.graph.` and `AuthenticationMethod`) that
# Graph lets an app delete; each lives in the collection `<kind>Methods`.
DELETABLE_KINDS = frozenset(
    {
        "email",
        "fido2",
        "microsoftAuthenticator",
        "phone",
        "softwareOath",
        "temporaryAccessPass",
        "windowsHelloForBusiness",
    }
)
PHISHING_RESISTANT_KINDS = frozenset({"fido2", "windowsHelloForBusiness", "platformCredential"})

# Audit activities that are, by themselves, one of R-35's changes.
ACTIVITY_KINDS = {
    "User registered security info": ChangeKind.MFA_ENROLLED,
    "Admin registered security info": ChangeKind.MFA_ENROLLED,
    "Add member to role": ChangeKind.PRIVILEGED_ROLE,
    "Add eligible member to role": ChangeKind.PRIVILEGED_ROLE,
    "Consent to application": ChangeKind.OAUTH_CONSENT,
    "Add delegated permission grant": ChangeKind.OAUTH_CONSENT,
}
# "Update user" is an address change when it touched one of these (the directory's names and
# Graph's).
ADDRESS_PROPERTIES = frozenset({"OtherMail", "otherMails", "Mobile", "mobilePhone"})


@dataclass(frozen=True)
class UserRisk:
    """Identity Protection's view of a user (Graph `riskyUser`)."""

    level: str  # none, low, medium, high, hidden
    state: str  # atRisk, confirmedCompromised, remediated, dismissed, confirmedSafe, none
    updated_at: dt.datetime | None = None


def graph_error(body: Any) -> tuple[str, str]:
    """Graph's error body `{"error": {"code", "message", …}}` as (code, message)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", str(body)[:300]


class GraphClient:
    """One Entra ID tenant, through one app registration with application permissions."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_host: str = AUTHORITY_HOST,
        graph_url: str = GRAPH_URL,
        timeout: float = 10.0,
        attempts: int = 3,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool | str = True,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._app: msal.ConfidentialClientApplication | None = None

        def new_app() -> msal.ConfidentialClientApplication:
            # Built on first use: msal reads the authority's OpenID configuration right away.
            return msal.ConfidentialClientApplication(
                client_id,
                client_credential=client_secret,
                authority=authority,
                # Entra's own hosts need no instance discovery; any other host (a sovereign
                # cloud's, a test fake's) is taken as configured.
                instance_discovery=False,
                http_client=VendorHttp(verify=verify, timeout=timeout),
            )

        self._new_app = new_app
        self._session = VendorSession(
            graph_url,
            self._token,
            error_reader=graph_error,
            timeout=timeout,
            attempts=attempts,
            max_wait=max_wait,
            sleep=sleep,
            verify=verify,
        )

    def __repr__(self) -> str:
        return f"GraphClient(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    # --- users and sessions -----------------------------------------------------------------

    def user_get(self, user_id: str) -> DirectoryUser:
        """The user by object id or userPrincipalName."""
        user = self._session.json(
            "GET",
            f"/users/{_segment(user_id)}",
            params={"$select": "id,userPrincipalName,displayName,accountEnabled"},
        )
        return DirectoryUser(
            id=user["id"],
            username=user["userPrincipalName"],
            display_name=user.get("displayName") or "",
            enabled=bool(user.get("accountEnabled")),
        )

    def user_enabled_set(self, user_id: str, enabled: bool) -> None:
        """Let the user sign in again (`unlock`), or put back the disabled state a snapshot
        recorded. Writing the value the user already has changes nothing: safe to repeat."""
        self._session.request(
            "PATCH",
            f"/users/{_segment(user_id)}",
            json={"accountEnabled": enabled},
            idempotent=True,
        )

    def sessions_revoke(self, user_id: str) -> bool:
        """End the user's sessions and refresh tokens (R-34); Graph answers `true`. Safe to
        repeat: a second revocation moves the cut-off to now again."""
        answer = self._session.json(
            "POST", f"/users/{_segment(user_id)}/revokeSignInSessions", idempotent=True
        )
        return bool(answer and answer.get("value"))

    # --- authentication methods -------------------------------------------------------------

    def temporary_pass_create(
        self, user_id: str, lifetime_minutes: int, usable_once: bool = True
    ) -> TemporaryPass:
        """A Temporary Access Pass for the owner's artifact session (R-11). Entra keeps one
        per user and replaces it on each create, so repeating a create whose answer was lost
        is safe: the lost pass is gone and the new one is the only one."""
        if not 1 <= lifetime_minutes <= MAX_PASS_MINUTES:
            raise ValueError(
                f"A temporary pass lives 1 to {MAX_PASS_MINUTES} minutes (R-31), "
                f"not {lifetime_minutes}."
            )
        created = self._session.json(
            "POST",
            f"/users/{_segment(user_id)}/authentication/temporaryAccessPassMethods",
            json={"lifetimeInMinutes": lifetime_minutes, "isUsableOnce": usable_once},
            idempotent=True,
        )
        starts = _when(created.get("startDateTime")) or _when(created.get("createdDateTime"))
        lifetime = created.get("lifetimeInMinutes", lifetime_minutes)
        return TemporaryPass(
            id=created["id"],
            secret=created["temporaryAccessPass"],
            expires_at=starts + dt.timedelta(minutes=lifetime) if starts else None,
            usable_once=bool(created.get("isUsableOnce", usable_once)),
        )

    def temporary_pass_delete(self, user_id: str, pass_id: str) -> None:
        self._delete(
            f"/users/{_segment(user_id)}/authentication/temporaryAccessPassMethods/"
            f"{_segment(pass_id)}"
        )

    def methods_list(self, user_id: str) -> list[AuthMethod]:
        return [
            _auth_method(method)
            for method in self._pages(f"/users/{_segment(user_id)}/authentication/methods")
        ]

    def method_delete(self, user_id: str, method: AuthMethod) -> None:
        """Remove a lost authenticator, through the collection of its kind."""
        if method.kind not in DELETABLE_KINDS:
            raise ValueError(f"Graph cannot delete a {method.kind!r} method.")
        self._delete(
            f"/users/{_segment(user_id)}/authentication/{method.kind}Methods/{_segment(method.id)}"
        )

    # --- directory roles --------------------------------------------------------------------

    def role_assignments_list(self, user_id: str) -> list[RoleAssignment]:
        """The user's directly assigned directory roles, with their names (R-19's snapshot)."""
        return [
            _role_assignment(assignment)
            for assignment in self._pages(
                "/roleManagement/directory/roleAssignments",
                params={
                    "$filter": f"principalId eq {_literal(user_id)}",
                    "$expand": "roleDefinition",
                },
            )
        ]

    def role_assignment_delete(self, assignment_id: str) -> None:
        self._delete(f"/roleManagement/directory/roleAssignments/{_segment(assignment_id)}")

    def role_assignment_create(
        self, user_id: str, role_id: str, scope: str = "/"
    ) -> RoleAssignment:
        """Grant the role back (R-19 restore). Graph refuses a duplicate with 400 "A
        conflicting object …"; then the assignment already there is the answer, which also
        makes a repeated create safe."""
        try:
            created = self._session.json(
                "POST",
                "/roleManagement/directory/roleAssignments",
                json={
                    "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
                    "principalId": user_id,
                    "roleDefinitionId": role_id,
                    "directoryScopeId": scope,
                },
                idempotent=True,
            )
        except VendorError as error:
            if not (error.kind == REJECTED and "conflicting object" in error.message):
                raise
            existing = next(
                (
                    held
                    for held in self.role_assignments_list(user_id)
                    if (held.role_id, held.scope) == (role_id, scope)
                ),
                None,
            )
            if existing is None:
                raise
            return existing
        definition = self._session.json(
            "GET", f"/roleManagement/directory/roleDefinitions/{_segment(role_id)}"
        )
        return _role_assignment({**created, "roleDefinition": definition})

    # --- the re-establishment window (R-35) -------------------------------------------------

    def changes_since(self, user_id: str, since: dt.datetime) -> list[ReportedChange]:
        """R-35's changes on the user the directory audit log reports since `since`, oldest
        first. Two reads: changes made to the user, and changes the user made (a consent to an
        application targets the application, not the user)."""
        if since.tzinfo is None:
            raise ValueError("`since` must carry its time zone.")
        after = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        records: dict[str, dict[str, Any]] = {}
        for who in (
            f"targetResources/any(t:t/id eq {_literal(user_id)})",
            f"initiatedBy/user/id eq {_literal(user_id)}",
        ):
            for record in self._pages(
                "/auditLogs/directoryAudits",
                params={"$filter": f"activityDateTime ge {after} and {who}"},
            ):
                records.setdefault(record["id"], record)
        changes = [
            change
            for record in records.values()
            if (change := _reported_change(record, user_id)) is not None
        ]
        return sorted(changes, key=lambda change: change.at)

    def risk_get(self, user_id: str) -> UserRisk | None:
        """Identity Protection's risk for the user; None when it holds no record of them."""
        try:
            risky = self._session.json("GET", f"/identityProtection/riskyUsers/{_segment(user_id)}")
        except VendorError as error:
            if error.kind == NOT_FOUND:
                return None
            raise
        return UserRisk(
            level=risky.get("riskLevel") or "none",
            state=risky.get("riskState") or "none",
            updated_at=_when(risky.get("riskLastUpdatedDateTime")),
        )

    # --- plumbing ---------------------------------------------------------------------------

    def _token(self, fresh: bool) -> str:
        """An app-only access token from msal's cache, or a new one when Graph refused the
        cached one (`fresh`)."""
        try:
            if self._app is None:
                self._app = self._new_app()
            if fresh:
                self._app.remove_tokens_for_client()
            result = self._app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        except (requests.RequestException, ValueError) as error:
            # ValueError: msal could not read the authority's OpenID configuration.
            raise VendorError(UNAVAILABLE, None, message=f"token endpoint: {error}"[:300]) from None
        if "access_token" not in result:
            description = str(result.get("error_description", "")).split("\r\n")[0]
            raise VendorError(AUTH, None, str(result.get("error", "")), description)
        return result["access_token"]

    def _pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink` (which repeats the query)."""
        page = self._session.json("GET", path, params=params)
        yield from page.get("value", [])
        while next_link := page.get("@odata.nextLink"):
            page = self._session.json("GET", next_link)
            yield from page.get("value", [])

    def _delete(self, path: str) -> None:
        try:
            self._session.request("DELETE", path)
        except VendorError as error:
            if error.kind != NOT_FOUND:
                raise  # 404: already gone, which is what was asked


def _segment(value: str) -> str:
    return quote(value, safe="@")


def _literal(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _auth_method(method: dict[str, Any]) -> AuthMethod:
    kind = (
        method.get("@odata.type", "")
        .removeprefix("#microsoft.graph.")
        .removesuffix("AuthenticationMethod")
    )
    label = method.get("displayName") or method.get("phoneNumber") or method.get("emailAddress")
    return AuthMethod(
        id=method["id"],
        kind=kind,
        label=label or "",
        created_at=_when(method.get("createdDateTime")),
        phishing_resistant=kind in PHISHING_RESISTANT_KINDS,
    )


def _role_assignment(assignment: dict[str, Any]) -> RoleAssignment:
    definition = assignment.get("roleDefinition") or {}
    return RoleAssignment(
        id=assignment["id"],
        role_id=assignment["roleDefinitionId"],
        role_name=definition.get("displayName", ""),
        scope=assignment.get("directoryScopeId") or "/",
    )


def _reported_change(record: dict[str, Any], user_id: str) -> ReportedChange | None:
    """The R-35 change an audit record reports, if it reports one that succeeded."""
    if record.get("result") != "success":
        return None
    activity = record.get("activityDisplayName", "")
    targets = record.get("targetResources") or []
    kind = ACTIVITY_KINDS.get(activity)
    target: dict[str, Any] = {"user_id": user_id}
    if kind is None and activity == "Update user":
        changed = _changed_properties(targets, user_id) & ADDRESS_PROPERTIES
        if not changed:
            return None
        kind, target["properties"] = ChangeKind.ADDRESS_CHANGED, sorted(changed)
    elif kind is None:
        return None
    elif kind == ChangeKind.PRIVILEGED_ROLE:
        modified = _modified(targets)
        target["role_id"] = modified.get("Role.TemplateId") or modified.get("Role.ObjectID", "")
        target["role_name"] = modified.get("Role.DisplayName", "")
    elif kind == ChangeKind.OAUTH_CONSENT:
        app = next((t for t in targets if t.get("type") == "ServicePrincipal"), {})
        target["service_principal_id"] = app.get("id", "")
        target["app_name"] = app.get("displayName") or ""
    initiator = record.get("initiatedBy") or {}
    by = (initiator.get("user") or {}).get("userPrincipalName") or (initiator.get("app") or {}).get(
        "displayName"
    )
    return ReportedChange(
        id=record["id"],
        at=dt.datetime.fromisoformat(record["activityDateTime"]),
        kind=kind,
        summary=f"{activity} (by {by})" if by else activity,
        target=target,
    )


def _modified(targets: list[dict[str, Any]]) -> dict[str, str]:
    """The targets' modified properties, name -> new value (audit values are JSON strings)."""
    return {
        prop.get("displayName", ""): str(prop.get("newValue") or "").strip('"')
        for resource in targets
        for prop in resource.get("modifiedProperties") or []
    }


def _changed_properties(targets: list[dict[str, Any]], user_id: str) -> set[str]:
    """Which of the user's properties an "Update user" record changed: the modified
    properties, and the list the directory writes under "Included Updated Properties"."""
    names: set[str] = set()
    for resource in targets:
        if resource.get("id") != user_id:
            continue
        for prop in resource.get("modifiedProperties") or []:
            name = prop.get("displayName", "")
            if name == "Included Updated Properties":
                listed = str(prop.get("newValue") or "").strip('"')
                names.update(part.strip() for part in listed.split(",") if part.strip())
            else:
                names.add(name)
    return names
