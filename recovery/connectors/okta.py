"""The Okta connector: a recovery really happens in the tenant's Okta org.

Built on `OktaClient` (the Management API through one `VendorSession`), it takes each step of
a cloud recovery (issue 14's design):

- `execute` creates no credential. For `password_reset`, `mfa_reset` and `temporary_access` it
  checks the user can sign in and snapshots their factors, admin roles and status, answering
  `detail["next"] == "temporary_pass"`; `unlock` returns a `LOCKED_OUT` user to `ACTIVE`.
- `temporary_pass_issue`, from the owner's artifact session only: a one-time reset link. The
  user is in `RECOVERY` from then on (their old password no longer signs in); the owner sets a
  new password on Okta's own page and enrols their new factor. The link lives only in
  `TemporaryPass.secret`.
- Containment: `sessions_revoke` ends Okta sessions, revokes OAuth/OIDC tokens and forgets
  remembered devices; `method_remove` unenrols one factor; `roles_suspend` / `roles_restore`
  unassign and assign back admin roles (R-19).
- The window (R-35): `changes_since` reads the System Log; `change_undo` unenrols the new factor,
  puts the previous recovery addresses back, withdraws an OAuth consent or removes the role.
- `revert`: factors enrolled since the snapshot unenrolled, sessions ended, admin roles as the
  snapshot had them.

What Okta cannot do is left out of `capabilities`, so the workflow tracks it as manual steps:
Vouchsafe never sets the owner's password here (they set it at Okta through the link), and a
mailbox rule or delegate has no Okta counterpart.

The first part of the module is shared with the Google Workspace connector: the settings
checks, the credential read at call time (from the environment variable or file the settings
name; a missing one is a failed result naming the variable or file, never a value), and vendor
failures turned into results.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from tenants.choices import CaseType
from tenants.models import Tenant

from ..models import ProtectedAccount
from . import validation
from .base import Capability, ExecutionResult, Health, Snapshot, capability_missing
from .cloud import (
    AuthMethod,
    ChangeKind,
    DirectoryUser,
    ReportedChange,
    RoleAssignment,
    TemporaryPass,
)
from .okta_client import OKTA_SCOPES, OktaApiToken, OktaClient, OktaServiceApp, OktaUser
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

if TYPE_CHECKING:
    from .validation import _Errors

logger = logging.getLogger(__name__)

# --- shared by the cloud connectors (google_workspace.py imports these) ---------------------

MAX_PASS_MINUTES = 480  # no temporary credential outlives a working day
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The kinds of a vendor's refusals (`vendor_http`). A connector raises other kinds for what it
# finds itself, before or instead of an answer, so that every failure takes one path to a result.
VENDOR_KINDS = frozenset(
    {AUTH, FORBIDDEN, NOT_FOUND, CONFLICT, THROTTLED, UNAVAILABLE, TIMEOUT, REJECTED}
)
CREDENTIAL_MISSING, CREDENTIAL_INVALID = "credential_missing", "credential_invalid"
USER_DISABLED, USER_CHANGED = "user_disabled", "user_changed"
TARGET_UNKNOWN = "change_target_unknown"


def settings_filled(
    errors: _Errors, raw: dict[str, Any], defaults: dict[str, Any], *, required: tuple[str, ...]
) -> dict[str, Any]:
    """`raw` over `defaults`, unknown and missing settings reported, text cleaned and booleans
    checked (a default's type is its setting's; required settings are text)."""
    known = {**dict.fromkeys(required, ""), **defaults}
    for name in sorted(set(raw) - set(known)):
        errors.add(name, "Unknown setting.")
    data = {name: raw.get(name, default) for name, default in known.items()}
    for name in required:
        if not raw.get(name):
            errors.add(name, "This setting is required.")
    for name, default in known.items():
        if isinstance(default, bool):
            if not isinstance(data[name], bool):
                errors.add(name, "Give true or false.")
            continue
        cleaned = validation._text(data[name])
        if cleaned is None:
            errors.add(name, "Give text of at most 500 characters, without control characters.")
        data[name] = cleaned or ""
    return data


def check_service_url(errors: _Errors, name: str, value: str, *, path_allowed: bool = False) -> str:
    """A vendor endpoint: https, a host, nothing else (a path only if `path_allowed`); http
    only on this machine, for the development fakes. Answered without a trailing '/'."""
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        errors.add(name, "The URL cannot be parsed.")
        return value
    local = parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        errors.add(name, "Give an https URL (http only for 127.0.0.1 or localhost).")
    elif not parts.hostname or parts.username is not None or parts.query or parts.fragment:
        errors.add(name, "Give a scheme and a host; no credentials, query or fragment.")
    elif parts.path not in ("", "/") and not path_allowed:
        errors.add(name, "Give the address without a path.")
    return value.rstrip("/")


def check_credential_reference(
    errors: _Errors, data: dict[str, Any], *, env: tuple[str, ...], file: tuple[str, ...]
) -> None:
    """Exactly one credential is named: an environment variable (an `env` setting) or an
    absolute file path (a `file` setting). A setting holds the name, never the secret."""
    given = [name for name in (*env, *file) if data[name]]
    if len(given) != 1:
        for name in given or (*env, *file):
            errors.add(name, f"Name exactly one credential: one of {', '.join((*env, *file))}.")
        return
    (name,) = given
    if name in env and not validation.ENV_NAME.match(data[name]):
        errors.add(
            name,
            "Name the environment variable that holds the credential (A-Z, 0-9, _); never the "
            "credential itself.",
        )
    if name in file and not data[name].startswith("/"):
        errors.add(name, "Give the absolute path of the file that holds the credential.")


def credential_place(*, env: str, file: str) -> str:
    return f"The environment variable {env}" if env else f"The file {file}"


def read_credential(*, env: str, file: str) -> str:
    """The credential the settings name, read now (a rotated key counts from the next call):
    from the environment variable `env`, else from the file `file`."""
    where = credential_place(env=env, file=file)
    if env:
        value = os.environ.get(env, "")
    else:
        try:
            value = Path(file).read_text()
        except OSError as error:
            message = f"{where} cannot be read ({error.strerror})."
            raise VendorError(CREDENTIAL_MISSING, None, message=message) from None
    if not value.strip():
        raise VendorError(CREDENTIAL_MISSING, None, message=f"{where} is not set or empty.")
    return value


def json_credential(*, env: str, file: str) -> dict[str, Any]:
    """A credential kept as a JSON object (a service account's key file)."""
    try:
        value = json.loads(read_credential(env=env, file=file))
    except ValueError:
        value = None  # the parser's message quotes the text: it goes nowhere
    if not isinstance(value, dict):
        where = credential_place(env=env, file=file)
        raise VendorError(CREDENTIAL_INVALID, None, message=f"{where} holds no JSON object.")
    return value


def user_disabled(vendor: str, status: str) -> VendorError:
    message = f"The {vendor} user cannot sign in ({status}): enable them before a recovery."
    return VendorError(USER_DISABLED, None, message=message)


def same_user(
    kind: str, account: ProtectedAccount, user: DirectoryUser, state: dict[str, Any]
) -> None:
    """Refuses (VendorError) when `user` is not the one a snapshot recorded: a user deleted and
    created again under the same name gets nothing put back."""
    if user.id != state.get("user_id"):
        message = (
            f"{account.username} is now the {kind} user {user.id}, not {state.get('user_id')} "
            "as recorded: nothing was changed."
        )
        raise VendorError(USER_CHANGED, None, message=message)


def target_unknown(message: str) -> VendorError:
    return VendorError(TARGET_UNKNOWN, None, message=message)


def failure_text(error: VendorError) -> str:
    """A failure in words: the vendor's status, code and message, or the connector's own."""
    return str(error) if error.kind in VENDOR_KINDS else error.message


def vendor_failure(kind: str, path: str, error: VendorError, tenant: Tenant) -> ExecutionResult:
    """A failed call as a result: `detail["code"]` is `<connector kind>.<error kind>`, with the
    vendor's code and status. Vendor messages name users and objects, never a credential."""
    text = failure_text(error)
    logging.getLogger(f"recovery.connectors.{kind}").warning(
        "%s connector (tenant %s): %s failed: %s", kind, tenant.pk, path, text
    )
    return ExecutionResult(
        ok=False,
        connector=kind,
        path=path,
        detail={"code": f"{kind}.{error.kind}", "vendor_code": error.code, "status": error.status},
        error=text,
    )


def refused(kind: str, path: str, code: str, error: str) -> ExecutionResult:
    return ExecutionResult(
        ok=False, connector=kind, path=path, detail={"code": f"{kind}.{code}"}, error=error
    )


def not_native(kind: str, path: str, why: str) -> ExecutionResult:
    """`capability_missing`, saying why and what a person does instead."""
    return replace(capability_missing(kind, path), error=why)


def lifetime_refused(kind: str, path: str, minutes: int) -> ExecutionResult | None:
    """The refusal of a pass lifetime outside 1..480 minutes (R-31), or None."""
    if 1 <= minutes <= MAX_PASS_MINUTES:
        return None
    error = f"A pass lives 1 to {MAX_PASS_MINUTES} minutes, not {minutes}."
    return refused(kind, path, "lifetime_invalid", error)


def pass_detail(issued: TemporaryPass, lifetime_minutes: int) -> dict[str, Any]:
    """What a result says of an issued pass, never its secret: `revoke_by` is when Vouchsafe's
    lifetime ends and `revoke_temporary_access` must end a pass the vendor does not expire."""
    revoke_by = datetime.now(UTC) + timedelta(minutes=lifetime_minutes)
    return {
        "pass_id": issued.id,
        "usable_once": issued.usable_once,
        "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
        "revoke_by": revoke_by.isoformat(),
    }


def method_state(method: AuthMethod) -> dict[str, Any]:
    created = method.created_at.isoformat() if method.created_at else None
    return {"id": method.id, "kind": method.kind, "label": method.label, "created_at": created}


def role_state(role: RoleAssignment) -> dict[str, Any]:
    return {
        "id": role.id,
        "role_id": role.role_id,
        "role_name": role.role_name,
        "scope": role.scope,
    }


VendorClient = TypeVar("VendorClient")


class VendorConnector(Generic[VendorClient]):
    """What the cloud connectors share: each operation builds the vendor client with the
    credential as it is now and answers a result whatever happens; admin roles are suspended,
    restored and put back to a snapshot the same way everywhere (R-19), through the vendor's
    `_roles_held` / `_role_unassign` / `_role_assign`."""

    kind: str
    tenant: Tenant
    manage_roles: bool
    roles_unmanaged: str  # why the roles are left alone, and where a person changes them

    def _vendor(self) -> VendorClient:
        raise NotImplementedError

    def _user(self, vendor: VendorClient, account: ProtectedAccount) -> DirectoryUser:
        raise NotImplementedError

    def _roles_held(self, vendor: VendorClient, user: DirectoryUser) -> list[RoleAssignment]:
        raise NotImplementedError

    def _role_unassign(
        self, vendor: VendorClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        raise NotImplementedError

    def _role_assign(self, vendor: VendorClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        raise NotImplementedError

    def roles_suspend(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Remove every admin role assignment; the result's snapshot holds what this call found
        (after a retry, the execution snapshot's roles are the complete list)."""
        if not self.manage_roles:
            return not_native(self.kind, "roles_suspend", self.roles_unmanaged)

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            held = self._roles_held(vendor, user)
            for assignment in held:
                self._role_unassign(vendor, user, assignment)
            return self._ok(
                "roles_suspend",
                snapshot=self._roles_snapshot(account, user, held),
                removed=[assignment.role_id for assignment in held],
            )

        return self._run("roles_suspend", work)

    def roles_restore(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Assign back the roles `snapshot.state["roles"]` lists; one held already is kept."""
        if not self.manage_roles:
            return not_native(self.kind, "roles_restore", self.roles_unmanaged)
        wanted = snapshot.state.get("roles")
        if snapshot.state.get("connector") != self.kind or wanted is None:
            error = f"The snapshot holds no {self.kind} admin roles to restore."
            return refused(self.kind, "roles_restore", "snapshot_without_roles", error)

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            same_user(self.kind, account, user, snapshot.state)
            for role in wanted:
                self._role_assign(vendor, user, role)
            return self._ok(
                "roles_restore",
                snapshot=self._roles_snapshot(account, user, self._roles_held(vendor, user)),
                restored=[role["role_id"] for role in wanted],
            )

        return self._run("roles_restore", work)

    def _roles_converge(
        self, vendor: VendorClient, user: DirectoryUser, wanted: list[dict[str, Any]]
    ) -> dict[str, list[str]]:
        """The user's admin roles made exactly `wanted` (a revert): roles granted since are
        removed, roles removed since are assigned back."""
        held = self._roles_held(vendor, user)
        wanted_keys = {(role["role_id"], role["scope"]) for role in wanted}
        extra = [a for a in held if (a.role_id, a.scope) not in wanted_keys]
        for assignment in extra:
            self._role_unassign(vendor, user, assignment)
        held_keys = {(a.role_id, a.scope) for a in held}
        missing = [role for role in wanted if (role["role_id"], role["scope"]) not in held_keys]
        for role in missing:
            self._role_assign(vendor, user, role)
        return {
            "roles_removed": [a.role_id for a in extra],
            "roles_restored": [role["role_id"] for role in missing],
        }

    def _roles_snapshot(
        self, account: ProtectedAccount, user: DirectoryUser, roles: list[RoleAssignment]
    ) -> Snapshot:
        state = {"connector": self.kind, "user_id": user.id, "roles": list(map(role_state, roles))}
        return Snapshot(account_external_id=account.external_id, state=state)

    def _run(self, path: str, work: Callable[[VendorClient], ExecutionResult]) -> ExecutionResult:
        try:
            return work(self._vendor())
        except VendorError as error:
            return vendor_failure(self.kind, path, error, self.tenant)

    def _ok(self, path: str, *, snapshot: Snapshot | None = None, **detail: Any) -> ExecutionResult:
        return ExecutionResult(
            ok=True, connector=self.kind, path=path, snapshot=snapshot, detail=detail
        )


# --- Okta -----------------------------------------------------------------------------------

KIND = "okta"
# Case types whose credential is the one-time pass the owner gets in their artifact session.
PASS_CASES = frozenset({CaseType.PASSWORD_RESET, CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS})
# No login has this form: the health probe's 404 proves the call was authenticated and allowed.
HEALTH_PROBE = "vouchsafe-health-probe.invalid"
ROLE_SCOPE = "okta.roles.manage"
OKTA_APP_PREFIX = "0oa"  # Okta's application ids, which are also the OAuth client ids

OKTA_DEFAULTS: dict[str, Any] = {
    "client_id": "",
    "key_id": "",
    "private_key_env": "",
    "private_key_file": "",
    "api_token_env": "",
    # Okta lets only a Super Admin app list, remove or add admin roles; without one, R-19 stays
    # a tracked manual step and the app asks for no role scope.
    "manage_roles": True,
}


def validate_okta_settings(raw: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    """The Okta settings with defaults filled in; problems go to `errors` by setting name.

    `org_url` (`https://<org>.okta.com`) and one credential: a service app's private key (PEM or
    JWK JSON) named by `private_key_env` or `private_key_file`, with its `client_id` (and the
    key's `key_id` when the app has several), or an API token named by `api_token_env`.
    """
    data = settings_filled(errors, raw, OKTA_DEFAULTS, required=("org_url",))
    data["org_url"] = check_service_url(errors, "org_url", data["org_url"])
    check_credential_reference(
        errors, data, env=("private_key_env", "api_token_env"), file=("private_key_file",)
    )
    if data["api_token_env"]:
        for name in ("client_id", "key_id"):
            if data[name]:
                errors.add(name, "Only for a service app's private key, not an API token.")
    elif not data["client_id"]:
        errors.add("client_id", "Give the service app's client ID (0oa...).")
    return data


class OktaConnector(VendorConnector[OktaClient]):
    """One tenant's Okta org. `client` replaces the one built from `settings` (tests)."""

    kind = KIND
    roles_unmanaged = (
        "This connector leaves admin roles alone (manage_roles is off: only a Super Admin "
        "service app may change them); change them in the Okta Admin Console."
    )

    def __init__(
        self, *, tenant: Tenant, settings: dict[str, Any], client: OktaClient | None = None
    ) -> None:
        self.tenant = tenant
        self.settings = settings
        self._client = client
        self.manage_roles: bool = settings["manage_roles"]
        self.capabilities = frozenset(
            {
                Capability.EXECUTE,
                Capability.REVERT,
                Capability.TEMPORARY_PASS,
                Capability.SESSIONS_REVOKE,
                Capability.METHODS_REMOVE,
                Capability.CHANGES_READ,
                Capability.CHANGE_UNDO,
                *([Capability.ROLES_SUSPEND] if self.manage_roles else []),
            }
        )

    # --- the Connector interface ------------------------------------------------------------

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        if case_type not in PASS_CASES and case_type != CaseType.UNLOCK:
            return None
        try:
            okta = self._vendor()
            return self._snapshot_of(okta, account, self._user(okta, account))
        except VendorError as error:
            logger.warning("okta connector (tenant %s): snapshot failed: %s", self.tenant.pk, error)
            return None

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        if case_type in PASS_CASES:
            return self._run("execute", lambda okta: self._prepare(okta, account))
        if case_type == CaseType.UNLOCK:
            return self._run("execute", lambda okta: self._unlock(okta, account))
        return capability_missing(self.kind, "execute")

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        if snapshot.state.get("connector") != self.kind:
            return refused(self.kind, "revert", "snapshot_foreign", "Not an Okta snapshot.")
        return self._run("revert", lambda okta: self._revert(okta, account, snapshot.state))

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        """End an unused reset link. Okta has no call that withdraws one: a new reset replaces
        the previous token (**verify** on a preview org) and its own link is dropped unread, so
        the user stays in `RECOVERY` until a new recovery. A link already used (the user is out
        of `RECOVERY`) leaves nothing to end."""

        def work(okta: OktaClient) -> ExecutionResult:
            user = self._user(okta, account)
            superseded = user.status == "RECOVERY"
            if superseded:
                okta.password_reset_link(user.id)
            return self._ok("revoke_temporary_access", reset_link_superseded=superseded)

        return self._run("revoke_temporary_access", work)

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        return not_native(
            self.kind,
            "password_set",
            "Vouchsafe does not set Okta passwords: the owner sets theirs at Okta with the "
            "one-time reset link.",
        )

    def health(self) -> Health:
        org = self.settings["org_url"]
        try:
            self._vendor().user_get(HEALTH_PROBE)
        except VendorError as error:
            if error.kind != NOT_FOUND:
                return Health(ok=False, detail=f"Okta at {org}: {failure_text(error)}")
        return Health(
            ok=True, detail=f"Okta at {org} accepted the credential and let it read users."
        )

    # --- the CloudConnector interface -------------------------------------------------------

    def temporary_pass_issue(
        self, *, account: ProtectedAccount, case_type: str, lifetime_minutes: int
    ) -> tuple[ExecutionResult, TemporaryPass | None]:
        """The one-time reset link, for the owner's artifact session only. Its life at Okta is
        the org's reset-token setting, which the answer does not give."""
        path = "temporary_pass_issue"
        if case_type not in PASS_CASES:
            return capability_missing(self.kind, path), None
        refusal = lifetime_refused(self.kind, path, lifetime_minutes)
        if refusal is not None:
            return refusal, None
        try:
            okta = self._vendor()
            issued = okta.password_reset_link(self._signing_in(okta, account).id)
        except VendorError as error:
            return vendor_failure(self.kind, path, error, self.tenant), None
        return self._ok(path, **pass_detail(issued, lifetime_minutes)), issued

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult:
        def work(okta: OktaClient) -> ExecutionResult:
            okta.sessions_clear(self._user(okta, account).id)
            return self._ok(
                "sessions_revoke",
                sessions_ended=True,
                oauth_tokens_revoked=True,
                devices_forgotten=True,
            )

        return self._run("sessions_revoke", work)

    def methods_list(self, *, account: ProtectedAccount) -> list[AuthMethod]:
        """The user's factors (VendorError when Okta cannot answer)."""
        okta = self._vendor()
        return okta.factors_list(self._user(okta, account).id)

    def method_remove(self, *, account: ProtectedAccount, method: AuthMethod) -> ExecutionResult:
        """Unenrol one factor. Unenrolling Okta Verify push or FastPass takes the user's other
        Okta Verify factors with it (Okta's rule); those then count as removed too."""

        def work(okta: OktaClient) -> ExecutionResult:
            okta.factor_delete(self._user(okta, account).id, method.id)
            return self._ok("method_remove", method=method.id, method_kind=method.kind)

        return self._run("method_remove", work)

    def changes_since(self, *, account: ProtectedAccount, since: datetime) -> list[ReportedChange]:
        """R-35's changes the System Log reports on the user (VendorError when it cannot)."""
        okta = self._vendor()
        return okta.changes_since(self._user(okta, account).id, since)

    def change_undo(self, *, account: ProtectedAccount, change: ReportedChange) -> ExecutionResult:
        path = "change_undo"
        undo = {
            ChangeKind.MFA_ENROLLED: self._undo_enrolment,
            ChangeKind.ADDRESS_CHANGED: self._undo_address,
            ChangeKind.OAUTH_CONSENT: self._undo_consent,
            ChangeKind.PRIVILEGED_ROLE: self._undo_role,
        }.get(change.kind)
        if undo is None:
            why = f"Okta holds no {change.kind}: undo it in the mail system that does."
            return not_native(self.kind, path, why)
        if change.kind == ChangeKind.PRIVILEGED_ROLE and not self.manage_roles:
            return not_native(self.kind, path, self.roles_unmanaged)
        return self._run(path, lambda okta: undo(okta, self._user(okta, account), change))

    # --- the steps --------------------------------------------------------------------------

    def _prepare(self, okta: OktaClient, account: ProtectedAccount) -> ExecutionResult:
        user = self._signing_in(okta, account)
        snapshot = self._snapshot_of(okta, account, user)
        return self._ok("execute", snapshot=snapshot, changed=False, next="temporary_pass")

    def _unlock(self, okta: OktaClient, account: ProtectedAccount) -> ExecutionResult:
        user = self._user(okta, account)
        snapshot = self._snapshot_of(okta, account, user)
        locked = user.status == "LOCKED_OUT"
        if locked:
            okta.unlock(user.id)
        elif not user.enabled:
            raise user_disabled("Okta", user.status)
        return self._ok("execute", snapshot=snapshot, changed=locked)

    def _revert(
        self, okta: OktaClient, account: ProtectedAccount, state: dict[str, Any]
    ) -> ExecutionResult:
        user = self._user(okta, account)
        same_user(self.kind, account, user, state)
        before = {method["id"] for method in state["methods"]}
        added = [factor.id for factor in okta.factors_list(user.id) if factor.id not in before]
        for factor_id in added:
            okta.factor_delete(user.id, factor_id)
        okta.sessions_clear(user.id)
        roles = {}
        if self.manage_roles and state.get("roles") is not None:
            roles = self._roles_converge(okta, user, state["roles"])
        not_restored = []
        if state["status"] == "LOCKED_OUT" and user.status != "LOCKED_OUT":
            not_restored.append(
                "The lock-out: Okta has no call that locks a user; suspend them in the Admin "
                "Console if the account must stay closed."
            )
        if before - {factor.id for factor in okta.factors_list(user.id)}:
            not_restored.append(
                "Factors unenrolled during the recovery: Okta cannot enrol them again; the "
                "owner enrols theirs."
            )
        return self._ok(
            "revert",
            methods_removed=added,
            sessions_ended=True,
            **roles,
            not_restored=not_restored,
        )

    def _undo_enrolment(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Unenrol the factor the event names (its `AuthenticatorEnrollment` target)."""
        enrolments = [
            target["id"]
            for target in change.target.get("targets", [])
            if target.get("type") == "AuthenticatorEnrollment" and target.get("id")
        ]
        if not enrolments:
            raise target_unknown("The event names no factor: review the user's factors.")
        for factor_id in enrolments:
            okta.factor_delete(user.id, factor_id)
        return self._ok("change_undo", methods_removed=enrolments)

    def _undo_address(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Put back the recovery addresses the event reports, with their previous values."""
        previous = change.target.get("previous")
        if not previous:
            raise target_unknown("The event carries no previous address.")
        okta.profile_update(user.id, previous)
        return self._ok("change_undo", restored=sorted(previous))

    def _undo_consent(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Withdraw the consent given to the OAuth client the event names, and its tokens."""
        clients = [
            target["id"]
            for target in change.target.get("targets", [])
            if str(target.get("id", "")).startswith(OKTA_APP_PREFIX)
        ]
        if not clients:
            raise target_unknown("The event names no OAuth client.")
        for client_id in clients:
            okta.client_grants_revoke(user.id, client_id)
        return self._ok("change_undo", consents_revoked=clients)

    def _undo_role(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Unassign the roles the event granted, known by the names the System Log gives
        (`privilegeGranted`, comma-separated). When the user holds roles and none matches, it
        fails closed: the log's wording and a role's label can differ, and a person decides."""
        privilege = str(change.target.get("privilege", ""))
        granted = {name.strip().lower() for name in privilege.split(",") if name.strip()}
        held = okta.roles_list(user.id)
        matching = [a for a in held if {a.role_name.lower(), a.role_id.lower()} & granted]
        if held and not matching:
            raise target_unknown(
                f"No admin role the user holds matches the privilege granted ({privilege!r}): "
                "review the user's roles."
            )
        for assignment in matching:
            okta.role_unassign(user.id, assignment.id)
        return self._ok("change_undo", roles_removed=[a.role_id for a in matching])

    # --- plumbing ---------------------------------------------------------------------------

    def _vendor(self) -> OktaClient:
        """The client, with the credential as it is now (VendorError when it is unusable)."""
        if self._client is not None:
            return self._client
        settings = self.settings
        if settings["api_token_env"]:
            token = read_credential(env=settings["api_token_env"], file="")
            return OktaClient(settings["org_url"], OktaApiToken(token))
        env, file = settings["private_key_env"], settings["private_key_file"]
        app = OktaServiceApp(
            settings["client_id"],
            read_credential(env=env, file=file),
            key_id=settings["key_id"] or None,
            scopes=tuple(s for s in OKTA_SCOPES if self.manage_roles or s != ROLE_SCOPE),
        )
        try:
            return OktaClient(settings["org_url"], app)
        except ValueError:
            where = credential_place(env=env, file=file)
            message = f"{where} holds no RSA or EC private key (PEM or JWK)."
            raise VendorError(CREDENTIAL_INVALID, None, message=message) from None

    def _user(self, okta: OktaClient, account: ProtectedAccount) -> OktaUser:
        return okta.user_get(account.idp_subject or account.username)

    def _roles_held(self, okta: OktaClient, user: DirectoryUser) -> list[RoleAssignment]:
        return okta.roles_list(user.id)

    def _role_unassign(
        self, okta: OktaClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        okta.role_unassign(user.id, assignment.id)

    def _role_assign(self, okta: OktaClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        okta.role_assign(user.id, role["role_id"], role["scope"])

    def _signing_in(self, okta: OktaClient, account: ProtectedAccount) -> OktaUser:
        """The user, who must be able to sign in (a suspended or deactivated one is refused)."""
        user = self._user(okta, account)
        if not user.enabled:
            raise user_disabled("Okta", user.status)
        return user

    def _snapshot_of(self, okta: OktaClient, account: ProtectedAccount, user: OktaUser) -> Snapshot:
        state: dict[str, Any] = {
            "connector": self.kind,
            "user_id": user.id,
            "username": user.username,
            "status": user.status,
            "enabled": user.enabled,
            "methods": [method_state(factor) for factor in okta.factors_list(user.id)],
        }
        if self.manage_roles:
            state["roles"] = [role_state(role) for role in okta.roles_list(user.id)]
        return Snapshot(account_external_id=account.external_id, state=state)
