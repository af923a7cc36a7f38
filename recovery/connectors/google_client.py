"""Google Workspace through the Admin SDK, with Google's own client library.

`GoogleClient` speaks to the Directory API (users, 2-Step Verification, backup codes, OAuth
grants, app passwords, admin roles), the Reports API (audit activities for the
re-establishment window) and the Gmail API's delegates (a shared mailbox's time-bound
delegation, acting as the mailbox's own user) and answers in the vocabulary of `cloud.py`.

Credentials: a service account with domain-wide delegation, acting as a Workspace
administrator (`admin_email`, the `sub` of its token request). Its key arrives as the parsed
JSON key file; the caller reads it from the file or environment variable the connector's
configuration names, never from the database. Each operation asks for the one scope it needs
(see `SCOPES`), so a scope the customer's super admin did not grant turns off only the
operations that need it: they fail `forbidden` with code `unauthorized_client`.

Google's answers become `VendorError` kinds (`recovery.connectors.vendor_http`):

| answer | kind |
|---|---|
| 401 again after one fresh token; token endpoint `invalid_grant`, `invalid_client` | `auth` |
| token endpoint `unauthorized_client` (a scope not delegated) | `forbidden` |
| 403 `forbidden`, `insufficientPermissions` | `forbidden` |
| 403 `userRateLimitExceeded` / `rateLimitExceeded`; 429 | `throttled` |
| 404 | `not_found` |
| 409 / 412 | `conflict` |
| 5xx; connection refused | `unavailable` |
| no answer within `timeout` | `timeout` |
| other 4xx | `rejected` |

Retries are the library's own. googleapiclient's `num_retries` repeats a request that was
answered 5xx, 429 or 403 with a rate-limit reason, or that timed out or could not connect,
sleeping `random() * 2**n` seconds before repeat n (through `googleapiclient.http`'s
`time.sleep`, which tests replace). It repeats POSTs as well, so every operation here is safe to
repeat: signing out, turning 2SV off and invalidating backup codes change nothing the second
time; generating backup codes replaces the set, and the codes answered are the ones read
after it; a repeated role assignment answers 409 `duplicate`, which reads the existing one. A
401 is google-auth-httplib2's: it fetches one fresh token and repeats the request once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from googleapiclient.discovery import Resource, build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

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
    FORBIDDEN,
    NOT_FOUND,
    REJECTED,
    THROTTLED,
    TIMEOUT,
    UNAVAILABLE,
    VendorError,
)

_AUTH = "https://www.googleapis.com/auth/"
USER_READONLY = _AUTH + "admin.directory.user.readonly"
USER = _AUTH + "admin.directory.user"
USER_SECURITY = _AUTH + "admin.directory.user.security"
ROLE_MANAGEMENT = _AUTH + "admin.directory.rolemanagement"
AUDIT_READONLY = _AUTH + "admin.reports.audit.readonly"
# Gmail delegates (a shared or functional mailbox's time-bound delegation): asked for as the
# mailbox's own user, never as the administrator.
GMAIL_SHARING = _AUTH + "gmail.settings.sharing"
# Every scope the client can ask for: what the super admin grants the service account's
# client id under Security > API controls > Domain-wide delegation.
SCOPES = (USER_READONLY, USER, USER_SECURITY, ROLE_MANAGEMENT, AUDIT_READONLY, GMAIL_SHARING)

_DIRECTORY = ("admin", "directory_v1")
_REPORTS = ("admin", "reports_v1")
_GMAIL = ("gmail", "v1")

_KIND_OF_STATUS = {
    401: AUTH,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: CONFLICT,
    412: CONFLICT,
    429: THROTTLED,
}
_RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})

# Reports API events that are one of R-35's changes, by (application, event name).
CHANGE_EVENTS = {
    ("login", "2sv_enroll"): ChangeKind.MFA_ENROLLED,
    ("login", "passkey_enrolled"): ChangeKind.MFA_ENROLLED,
    ("login", "titanium_enroll"): ChangeKind.MFA_ENROLLED,  # Advanced Protection: security keys
    ("login", "recovery_email_edit"): ChangeKind.ADDRESS_CHANGED,
    ("login", "recovery_phone_edit"): ChangeKind.ADDRESS_CHANGED,
    ("login", "email_forwarding_out_of_domain"): ChangeKind.MAILBOX_RULE,
    ("token", "authorize"): ChangeKind.OAUTH_CONSENT,
    ("admin", "ASSIGN_ROLE"): ChangeKind.PRIVILEGED_ROLE,
}


@dataclass(frozen=True)
class WorkspaceUser(DirectoryUser):
    """The user with their 2-Step Verification enrolment: backup codes only help a user who
    has 2SV on."""

    two_step_enrolled: bool = False


@dataclass(frozen=True)
class OAuthGrant:
    """An application the user granted OAuth access to (a Directory API `Token`)."""

    client_id: str
    display_name: str
    scopes: tuple[str, ...]


class GoogleClient:
    """One Workspace customer, reached as `admin_email` through a delegated service account.

    `api_endpoint` replaces `https://admin.googleapis.com/` and `gmail_endpoint`
    `https://gmail.googleapis.com/` (the tests' fake); the token endpoint is the key's own
    `token_uri`.
    """

    def __init__(
        self,
        key_info: Mapping[str, Any],
        admin_email: str,
        *,
        customer: str = "my_customer",
        api_endpoint: str | None = None,
        gmail_endpoint: str | None = None,
        timeout: float = 10.0,
        num_retries: int = 3,
    ) -> None:
        self._key_info = dict(key_info)
        self._admin_email = admin_email
        self._customer = customer
        self._api_endpoint = api_endpoint
        self._gmail_endpoint = gmail_endpoint
        self._timeout = timeout
        self._num_retries = num_retries
        self._services: dict[tuple[str, str, str, str], Resource] = {}

    # --- the user and their sessions ------------------------------------------------------

    def user_get(self, user_key: str) -> WorkspaceUser:
        """`user_key`: the primary e-mail address, an alias or the user's id."""
        found = self._execute(self._directory(USER_READONLY).users().get(userKey=user_key))
        return WorkspaceUser(
            id=found["id"],
            username=found["primaryEmail"],
            display_name=found.get("name", {}).get("fullName", ""),
            enabled=not found.get("suspended", False),
            two_step_enrolled=found.get("isEnrolledIn2Sv", False),
        )

    def sign_out(self, user_key: str) -> None:
        """End the user's web and device sessions; they must sign in again."""
        self._execute(self._directory(USER_SECURITY).users().signOut(userKey=user_key))

    def password_change_required(self, user_key: str, required: bool = True) -> None:
        body = {"changePasswordAtNextLogin": required}
        self._execute(self._directory(USER).users().update(userKey=user_key, body=body))

    def suspended_set(self, user_key: str, suspended: bool) -> None:
        """Suspend the user, or lift a suspension (how an administrator lets a suspended user
        sign in again)."""
        body = {"suspended": suspended}
        self._execute(self._directory(USER).users().update(userKey=user_key, body=body))

    def tokens_list(self, user_key: str) -> list[OAuthGrant]:
        tokens = self._directory(USER_SECURITY).tokens()
        return [
            OAuthGrant(item["clientId"], item.get("displayText", ""), tuple(item.get("scopes", ())))
            for item in self._execute(tokens.list(userKey=user_key)).get("items", [])
        ]

    def token_delete(self, user_key: str, client_id: str) -> None:
        """Revoke the application's grant; one already gone (404) counts as done."""
        tokens = self._directory(USER_SECURITY).tokens()
        self._execute_unless_gone(tokens.delete(userKey=user_key, clientId=client_id))

    def app_passwords_list(self, user_key: str) -> list[AuthMethod]:
        """App passwords: they let IMAP and older clients in whatever the sessions."""
        asps = self._directory(USER_SECURITY).asps()
        return [
            AuthMethod(
                id=str(item["codeId"]),
                kind="app_password",
                label=item.get("name", ""),
                created_at=_from_millis(item.get("creationTime")),
            )
            for item in self._execute(asps.list(userKey=user_key)).get("items", [])
        ]

    def app_password_delete(self, user_key: str, code_id: str) -> None:
        """Delete one app password; one already gone (404) counts as done."""
        asps = self._directory(USER_SECURITY).asps()
        self._execute_unless_gone(asps.delete(userKey=user_key, codeId=int(code_id)))

    # --- 2-Step Verification --------------------------------------------------------------

    def two_step_turn_off(self, user_key: str) -> None:
        """Turn 2-Step Verification off, so the lost second factor is no longer asked for;
        the owner enrols again (where 2SV is enforced, at their next sign-in)."""
        verification = self._directory(USER_SECURITY).twoStepVerification()
        self._execute(verification.turnOff(userKey=user_key))

    def backup_codes_generate(self, user_key: str) -> list[TemporaryPass]:
        """A new set of backup codes (the old ones stop working), one `TemporaryPass` each,
        for the owner's artifact session only: each `id` names a position, never a code."""
        codes = self._directory(USER_SECURITY).verificationCodes()
        self._execute(codes.generate(userKey=user_key))
        listed = self._execute(codes.list(userKey=user_key)).get("items", [])
        return [
            TemporaryPass(id=f"backup-code-{number}", secret=item["verificationCode"])
            for number, item in enumerate(listed, start=1)
        ]

    def backup_codes_invalidate(self, user_key: str) -> None:
        codes = self._directory(USER_SECURITY).verificationCodes()
        self._execute(codes.invalidate(userKey=user_key))

    # --- admin roles ----------------------------------------------------------------------

    def role_assignments_list(self, user_key: str) -> list[RoleAssignment]:
        """The user's direct admin role assignments, with the roles' names."""
        directory = self._directory(ROLE_MANAGEMENT)
        names = self._role_names(directory)
        found = self._all(directory.roleAssignments(), customer=self._customer, userKey=user_key)
        return [_role_assignment(item, names) for item in found]

    def role_assignment_create(
        self, user_id: str, role_id: str, scope: str = "/"
    ) -> RoleAssignment:
        """Assign a role to the user (by their id) customer-wide (`scope` "/") or in one
        organisational unit (`scope` its id). An identical assignment already there (409
        `duplicate`) is answered as it is, so a restore can be repeated."""
        directory = self._directory(ROLE_MANAGEMENT)
        assignments = directory.roleAssignments()
        body = {"roleId": role_id, "assignedTo": user_id, "scopeType": "CUSTOMER"}
        if scope != "/":
            body.update(scopeType="ORG_UNIT", orgUnitId=scope)
        try:
            created = self._execute(assignments.insert(customer=self._customer, body=body))
        except VendorError as error:
            if error.status != 409:
                raise
            existing = [
                item
                for item in self._all(
                    assignments, customer=self._customer, userKey=user_id, roleId=role_id
                )
                if _scope(item) == scope
            ]
            if not existing:
                raise
            created = existing[0]
        return _role_assignment(created, self._role_names(directory))

    def role_assignment_delete(self, assignment_id: str) -> None:
        """Remove a role assignment; one already gone (404) counts as done."""
        assignments = self._directory(ROLE_MANAGEMENT).roleAssignments()
        request = assignments.delete(customer=self._customer, roleAssignmentId=assignment_id)
        self._execute_unless_gone(request)

    # --- Gmail delegates (a mailbox's time-bound delegation) -------------------------------

    def delegate_create(self, mailbox: str, delegate: str) -> bool:
        """Let `delegate` (an address of the same Workspace) read and send from `mailbox`
        (Gmail's `users.settings.delegates.create`, status `accepted` at once, no e-mail). The
        call acts as the mailbox's user. False when the delegate was there already (409)."""
        delegates = self._gmail_delegates(mailbox)
        try:
            self._execute(delegates.create(userId=mailbox, body={"delegateEmail": delegate}))
        except VendorError as error:
            if error.status != 409:
                raise
            return False
        return True

    def delegate_delete(self, mailbox: str, delegate: str) -> None:
        """Take the delegate away; one already gone (404) counts as done."""
        delegates = self._gmail_delegates(mailbox)
        self._execute_unless_gone(delegates.delete(userId=mailbox, delegateEmail=delegate))

    def _gmail_delegates(self, mailbox: str) -> Resource:
        gmail = self._service(_GMAIL, GMAIL_SHARING, subject=mailbox)
        return gmail.users().settings().delegates()

    # --- the re-establishment window ------------------------------------------------------

    def changes_since(self, user_key: str, since: datetime) -> list[ReportedChange]:
        """The R-35 changes Google reported on the user from `since` (aware), oldest first.

        `user_key` is the primary e-mail address: admin activities name the user they
        changed by it. Read: the user's own `login` activities (2SV, passkey and Advanced
        Protection enrolment, recovery e-mail and phone, forwarding out of the domain), their
        `token` authorisations, and every admin's `ASSIGN_ROLE` naming them.
        """
        if since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        activities = self._service(_REPORTS, AUDIT_READONLY).activities()
        start = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        queries = (
            {"applicationName": "login", "userKey": user_key},
            {"applicationName": "token", "userKey": user_key, "eventName": "authorize"},
            {
                "applicationName": "admin",
                "userKey": "all",
                "eventName": "ASSIGN_ROLE",
                "filters": f"USER_EMAIL=={user_key}",
            },
        )
        changes = [
            change
            for query in queries
            for activity in self._all(activities, startTime=start, **query)
            for change in _changes(activity)
        ]
        return sorted(changes, key=lambda change: change.at)

    # --- the library ----------------------------------------------------------------------

    def _directory(self, scope: str) -> Resource:
        return self._service(_DIRECTORY, scope)

    def _service(self, api: tuple[str, str], scope: str, *, subject: str = "") -> Resource:
        """The API's client with a token for `scope` only, acting as `subject` (the
        administrator unless named), built from the library's bundled discovery document and
        kept for the next call."""
        subject = subject or self._admin_email
        key = (*api, scope, subject.lower())
        if key not in self._services:
            credentials = (
                service_account.Credentials.from_service_account_info(self._key_info)
                .with_subject(subject)
                .with_scopes([scope])
            )
            http = google_auth_httplib2.AuthorizedHttp(
                credentials, http=httplib2.Http(timeout=self._timeout), max_refresh_attempts=1
            )
            endpoint = self._gmail_endpoint if api == _GMAIL else self._api_endpoint
            options = {"api_endpoint": endpoint} if endpoint else None
            self._services[key] = build(
                *api,
                http=http,
                static_discovery=True,
                cache_discovery=False,
                client_options=options,
            )
        return self._services[key]

    def _execute(self, request: HttpRequest) -> dict[str, Any]:
        """The parsed answer (`{}` for an empty one), or `VendorError`."""
        try:
            return request.execute(num_retries=self._num_retries) or {}
        except HttpError as error:
            raise _http_failure(error) from error
        except RefreshError as error:
            raise _token_failure(error) from error
        except TimeoutError as error:
            raise VendorError(TIMEOUT, None, message=f"no answer in {self._timeout:g} s") from error
        except (TransportError, httplib2.HttpLib2Error, OSError) as error:
            raise VendorError(UNAVAILABLE, None, message=str(error)[:300]) from error

    def _execute_unless_gone(self, request: HttpRequest) -> None:
        try:
            self._execute(request)
        except VendorError as error:
            if error.kind != NOT_FOUND:
                raise

    def _all(self, collection: Resource, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following `nextPageToken` with the library's
        `list_next`."""
        request = collection.list(**params)
        while request is not None:
            page = self._execute(request)
            yield from page.get("items", [])
            request = collection.list_next(request, page)

    def _role_names(self, directory: Resource) -> dict[str, str]:
        roles = self._all(directory.roles(), customer=self._customer)
        return {role["roleId"]: role.get("roleName", "") for role in roles}


def _http_failure(error: HttpError) -> VendorError:
    status = error.resp.status
    try:
        body = json.loads(error.content)["error"]
        reason, message = body["errors"][0]["reason"], body["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        reason, message = "", error.content[:300].decode(errors="replace")
    if status == 403 and reason in _RATE_LIMIT_REASONS:
        kind = THROTTLED
    elif status in _KIND_OF_STATUS:
        kind = _KIND_OF_STATUS[status]
    elif status >= 500:
        kind = UNAVAILABLE
    else:
        kind = REJECTED
    return VendorError(kind, status, reason, message)


def _token_failure(error: RefreshError) -> VendorError:
    """The token endpoint refused: a scope not delegated is a permission the customer's
    super admin must grant (`forbidden`); anything else is a broken credential (`auth`)."""
    answer = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], Mapping) else {}
    code = str(answer.get("error", ""))
    if code == "unauthorized_client":
        kind = FORBIDDEN
    elif error.retryable:
        kind = UNAVAILABLE
    else:
        kind = AUTH
    description = answer.get("error_description") or str(error.args[0] if error.args else "")
    return VendorError(kind, None, code, f"token endpoint: {description}"[:300])


def _scope(assignment: Mapping[str, Any]) -> str:
    return assignment.get("orgUnitId", "") if assignment.get("scopeType") == "ORG_UNIT" else "/"


def _role_assignment(item: Mapping[str, Any], names: Mapping[str, str]) -> RoleAssignment:
    return RoleAssignment(
        id=item["roleAssignmentId"],
        role_id=item["roleId"],
        role_name=names.get(item["roleId"], ""),
        scope=_scope(item),
    )


def _changes(activity: Mapping[str, Any]) -> Iterator[ReportedChange]:
    """The activity's events that are R-35 changes; the event's parameters are what undoing
    it needs (the OAuth client id, the role's name, the forwarding address)."""
    ident = activity["id"]
    application = ident["applicationName"]
    actor = activity.get("actor", {}).get("email", "")
    for event in activity.get("events", []):
        kind = CHANGE_EVENTS.get((application, event.get("name", "")))
        if kind is None:
            continue
        parameters = {p["name"]: _parameter_value(p) for p in event.get("parameters", [])}
        yield ReportedChange(
            id=f"{application}/{ident['time']}/{ident['uniqueQualifier']}/{event['name']}",
            at=datetime.fromisoformat(ident["time"]),
            kind=kind,
            summary=f"{application} {event['name']} by {actor}",
            target={"application": application, "event": event["name"], **parameters},
        )


def _parameter_value(parameter: Mapping[str, Any]) -> Any:
    for field_name in ("value", "multiValue", "intValue", "boolValue"):
        if field_name in parameter:
            return parameter[field_name]
    return None


def _from_millis(raw: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw and int(raw) else None
