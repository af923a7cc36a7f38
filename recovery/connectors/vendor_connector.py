"""What the cloud connectors (Entra ID, Okta, Google Workspace) share, each piece written once.

A cloud connector is a `VendorConnector` over its vendor's client. It names the vendor calls
(find the user, list and delete methods, list, remove and assign admin roles, unlock) in small
hooks, and this module does the rest the same way for all three:

- Settings: unknown and missing ones, text, booleans, a vendor URL (https; http only on this
  machine, for the development fakes), and a credential that is named (an environment
  variable or a file), never given.
- The credential is read when an operation runs, not when the connector is built, so a rotated
  key counts from the next call and a missing one is a failed result naming the variable or the
  file, never a value.
- Every failure, the vendor's refusal or the connector's own, is a `VendorError` turned into
  one result shape: `detail["code"]` is `<connector kind>.<error kind>`, next to the vendor's
  own code and HTTP status.
- An operation of several steps runs every step and reports which were done and which failed:
  a method that cannot be deleted must not keep sessions alive (R-34). Each step is safe to
  repeat, so running the operation again does what is left. Steps that need a read first are
  planned after it; when that read fails, it is the one step that fails.
- The same-user guard: a user deleted and created again under the same name gets nothing back.
- Admin roles suspended, restored and put back to a snapshot (R-19), and `snapshot`,
  `execute`, `revert` and `change_undo` around the vendor's hooks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from tenants.choices import CaseType
from tenants.models import Tenant

from ..models import ProtectedAccount
from . import validation
from .base import Capability, ExecutionResult, Snapshot, capability_missing
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

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The kinds of a vendor's refusals (`vendor_http`). A connector raises other kinds for what it
# finds itself, before or instead of an answer, so that every failure takes one path to a result.
VENDOR_KINDS = frozenset(
    {AUTH, FORBIDDEN, NOT_FOUND, CONFLICT, THROTTLED, UNAVAILABLE, TIMEOUT, REJECTED}
)
CREDENTIAL_MISSING, CREDENTIAL_INVALID = "credential_missing", "credential_invalid"
USER_DISABLED, USER_CHANGED = "user_disabled", "user_changed"
TARGET_UNKNOWN = "change_target_unknown"

# One step of an operation: what it does, in words, and the call that does it.
Step = tuple[str, Callable[[], object]]
State = dict[str, Any]  # a snapshot's state
# What a revert reports it could not put back, for a person: `not_restored` (sentences), and
# for methods `not_removable` and `not_restorable` (method states).
Report = dict[str, list[Any]]
VendorClient = TypeVar("VendorClient")


# --- settings ------------------------------------------------------------------------------


def settings_filled(
    errors: _Errors, raw: dict[str, Any], defaults: dict[str, Any], *, required: tuple[str, ...]
) -> dict[str, Any]:
    """`raw` over `defaults`, with unknown and missing settings reported. A default's type is
    its setting's (a required setting is text): text is cleaned, and one whose default is not
    empty may not be emptied; booleans are checked; other types (numbers, lists) are left to
    the connector's own checks."""
    known = {**dict.fromkeys(required, ""), **defaults}
    for name in sorted(set(raw) - set(known)):
        errors.add(name, "Unknown setting.")
    data = {name: raw.get(name, default) for name, default in known.items()}
    for name, default in known.items():
        if isinstance(default, bool):
            if not isinstance(data[name], bool):
                errors.add(name, "Give true or false.")
        elif isinstance(default, str):
            cleaned = validation._text(data[name])
            if cleaned is None:
                errors.add(name, "Give text of at most 500 characters, without control characters.")
            elif not cleaned and (default or name in required):
                errors.add(name, "This setting is required.")
            data[name] = cleaned or ""
    return data


def check_service_url(errors: _Errors, name: str, value: str, *, path_allowed: bool = False) -> str:
    """A vendor endpoint: https, a host, nothing else (a path only if `path_allowed`); http
    only on this machine, for the development fakes. Answered without a trailing '/'. An empty
    value is left to `settings_filled`, which reports it."""
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
    errors: _Errors, data: dict[str, Any], *, env: tuple[str, ...], file: tuple[str, ...] = ()
) -> None:
    """Exactly one credential is named: an environment variable (an `env` setting) or an
    absolute file path (a `file` setting). A setting holds the name, never the secret."""
    names = (*env, *file)
    given = [name for name in names if data[name]]
    if len(given) != 1:
        for name in given or names:
            errors.add(name, f"Name the credential in exactly one of: {', '.join(names)}.")
        return
    (name,) = given
    if name in env and not validation.ENV_NAME.match(data[name]):
        errors.add(
            name,
            "Name the environment variable that holds the secret (A-Z, 0-9, _); never the "
            "secret itself.",
        )
    if name in file and not data[name].startswith("/"):
        errors.add(name, "Give the absolute path of the file that holds the secret.")


# --- the credential ------------------------------------------------------------------------


def credential_place(*, env: str, file: str) -> str:
    return f"The environment variable {env}" if env else f"The file {file}"


def read_credential(*, env: str, file: str = "") -> str:
    """The credential the settings name, read now: from the environment variable `env`, else
    from the file `file`."""
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


def credential_invalid(*, env: str, file: str, holds_no: str) -> VendorError:
    """The credential was read but is not what it should be; its text goes nowhere."""
    message = f"{credential_place(env=env, file=file)} holds no {holds_no}."
    return VendorError(CREDENTIAL_INVALID, None, message=message)


def json_credential(*, env: str, file: str) -> dict[str, Any]:
    """A credential kept as a JSON object (a service account's key file)."""
    try:
        value = json.loads(read_credential(env=env, file=file))
    except ValueError:
        value = None  # the parser's message quotes the text: it goes nowhere
    if not isinstance(value, dict):
        raise credential_invalid(env=env, file=file, holds_no="JSON object")
    return value


# --- what a refusal, a snapshot and a result say -------------------------------------------


def same_user(vendor: str, account: ProtectedAccount, user: DirectoryUser, recorded: Any) -> None:
    """Refuses (VendorError) when `user` is not the one recorded (by a snapshot, or in a
    reported change): a user deleted and created again under the same name gets nothing."""
    if user.id != recorded:
        message = (
            f"{account.username} is now the {vendor} user {user.id}, not {recorded} as "
            "recorded: nothing was changed."
        )
        raise VendorError(USER_CHANGED, None, message=message)


def target_unknown(message: str) -> VendorError:
    return VendorError(TARGET_UNKNOWN, None, message=message)


def method_state(method: AuthMethod) -> dict[str, Any]:
    """A method as a snapshot keeps it: id, kind and creation time. Not its label, which can
    be a phone number or an address, and a snapshot goes into the audit trail."""
    created = method.created_at.isoformat() if method.created_at else None
    return {"id": method.id, "kind": method.kind, "created_at": created}


def role_state(role: RoleAssignment) -> dict[str, Any]:
    return {
        "id": role.id,
        "role_id": role.role_id,
        "role_name": role.role_name,
        "scope": role.scope,
    }


def role_label(role: dict[str, Any]) -> str:
    return f"{role['role_name'] or role['role_id']} at {role['scope']}"


def pass_detail(issued: TemporaryPass, lifetime_minutes: int) -> dict[str, Any]:
    """What a result says of an issued pass, never its secret: `revoke_by` is when Vouchsafe's
    lifetime ends and `revoke_temporary_access` must end a pass the vendor does not expire."""
    revoke_by = datetime.now(UTC) + timedelta(minutes=lifetime_minutes)
    return {
        "pass_id": issued.id,
        "usable_once": issued.usable_once,
        "lifetime_minutes": lifetime_minutes,
        "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
        "revoke_by": revoke_by.isoformat(),
    }


def planned(label: str, plan: Callable[[], list[Step]]) -> list[Step]:
    """The steps `plan` makes; when the read they depend on fails, one step `label` that fails
    with that error, so that the steps which do not need it still run."""
    try:
        return plan()
    except VendorError as error:
        failure = error

    def fail() -> None:
        raise failure

    return [(label, fail)]


# --- the connector -------------------------------------------------------------------------

# Undoes one reported change on the user, answering the result.
Undo = Callable[[Any, DirectoryUser, ReportedChange], ExecutionResult]


class VendorConnector(Generic[VendorClient]):
    """One tenant's cloud directory through its vendor's client. Every operation builds the
    client with the credential as it is now (unless one was given, for tests) and answers a
    result whatever happens; the vendor's part is in the hooks below the operations."""

    kind: str
    vendor: str  # the product as messages name it: "Entra ID", "Okta", "Google Workspace"
    native: frozenset[Capability]  # what it does natively, roles included
    execute_case_types: frozenset[str]
    pass_case_types: frozenset[str]  # those whose credential is the owner's one-time pass
    roles_unmanaged = ""  # why roles are left alone when `manage_roles` is off, and where to go
    # Why Vouchsafe does not set the owner's password at this vendor, and how the owner does.
    not_set_here: str
    # Case types the vendor has no safe native path for, and why (the case falls back to a
    # person); refused at execution and for a pass alike.
    not_executed: dict[str, str] = {}
    hints: dict[str, str] = {}  # what to do about a vendor refusal, by error kind
    not_undone: dict[str, str] = {}  # the changes it cannot undo, and where a person does
    # Why it cannot grant mailbox access (when MAILBOX_DELEGATE is not native), and who does.
    no_mailbox_delegation = ""

    def __init__(
        self, *, tenant: Tenant, settings: dict[str, Any], client: VendorClient | None = None
    ) -> None:
        self.tenant = tenant
        self.settings = settings
        self._client = client
        self.manage_roles: bool = settings.get("manage_roles", True)
        unmanaged = set() if self.manage_roles else {Capability.ROLES_SUSPEND}
        self.capabilities = self.native - unmanaged

    # --- the operations the three share -----------------------------------------------------

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        if case_type not in self.execute_case_types:
            return None
        try:
            vendor = self._vendor()
            user = self._user(vendor, account)
            return self._snapshot_of(vendor, account, user, case_type=case_type)
        except VendorError as error:
            self._log.warning(
                "%s connector (tenant %s): snapshot of %s failed: %s",
                self.kind,
                self.tenant.pk,
                account.username,
                error,
            )
            return None

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        """Snapshot first. `unlock` lets the user sign in again; the other case types change
        nothing and answer `next: temporary_pass`: the credential is the pass the owner gets
        in their artifact session (R-10, R-12), for a user who can use it."""
        path = "execute"
        if case_type in self.not_executed:
            return self._not_native(path, self.not_executed[case_type])
        if case_type not in self.execute_case_types:
            return capability_missing(self.kind, f"{path} {case_type}")

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            taken = self._snapshot_of(vendor, account, user, case_type=case_type, case_id=case_id)
            if case_type == CaseType.UNLOCK:
                return self._ok(path, snapshot=taken, changed=self._unlock(vendor, user))
            refusal = self._pass_refusal(user)
            if refusal is not None:
                return self._failure(path, refusal, snapshot=taken)
            return self._ok(path, snapshot=taken, changed=False, next="temporary_pass")

        return self._run(path, work)

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Converge on the snapshot, every step run whatever another's outcome. What the vendor
        cannot put back is in `detail["not_restored"]` (and, for methods,
        `not_removable` / `not_restorable`), for a person to do."""
        path = "revert"
        state = snapshot.state
        if state.get("connector") != self.kind or "user_id" not in state:
            error = f"This snapshot was not taken by the {self.vendor} connector."
            return self._refused(path, "snapshot_foreign", error)

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            same_user(self.vendor, account, user, state["user_id"])
            report: Report = {"not_restored": []}
            steps = [
                *self._credentials_revert(vendor, user, state, report),
                *self._roles_revert(vendor, user, state, report),
                *self._enabled_revert(vendor, user, state, report),
                # last, so that no session opened while the revert ran survives it
                self._sessions_end(vendor, user),
            ]
            return self._steps(path, steps, **report)

        return self._run(path, work)

    def temporary_pass_issue(
        self, *, account: ProtectedAccount, case_type: str, lifetime_minutes: int
    ) -> tuple[ExecutionResult, TemporaryPass | None]:
        """The vendor's one-time pass, for the owner's artifact session only (R-10, R-12), to a
        user who can use it. A lifetime outside R-31 is refused before the vendor is asked."""
        path = "temporary_pass_issue"
        if case_type in self.not_executed:
            return self._not_native(path, self.not_executed[case_type]), None
        if case_type not in self.pass_case_types:
            return capability_missing(self.kind, path), None
        refusal = self._lifetime_refused(path, lifetime_minutes)
        if refusal is not None:
            return refusal, None
        try:
            vendor = self._vendor()
            issued, detail = self._pass_issue(vendor, self._pass_user(vendor, account))
        except VendorError as error:
            return self._failure(path, error), None
        return self._issued(path, issued, lifetime_minutes, **detail)

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        """No cloud connector sets a password (PASSWORD_SET is not among their capabilities):
        the owner sets theirs at the vendor with the pass, so no password passes through
        anyone."""
        return self._not_native("password_set", self.not_set_here)

    def methods_list(self, *, account: ProtectedAccount) -> list[AuthMethod]:
        """The user's methods (VendorError when the vendor cannot answer)."""
        vendor = self._vendor()
        return self._methods(vendor, self._user(vendor, account))

    def method_remove(self, *, account: ProtectedAccount, method: AuthMethod) -> ExecutionResult:
        """Remove one method; one already gone counts as removed."""
        path = "method_remove"
        why = self._removal_refused(method)
        if why is not None:
            return self._not_native(path, why)

        def work(vendor: VendorClient) -> ExecutionResult:
            self._method_delete(vendor, self._user(vendor, account), method)
            return self._ok(path, method_id=method.id, kind=method.kind)

        return self._run(path, work)

    def changes_since(self, *, account: ProtectedAccount, since: datetime) -> list[ReportedChange]:
        """R-35's changes the vendor's audit log reports on the user since `since`
        (VendorError when it cannot answer)."""
        vendor = self._vendor()
        return self._changes(vendor, self._user(vendor, account), since)

    def roles_suspend(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Remove the user's admin role assignments (R-19). The snapshot lists every one
        found, removed or not, for `roles_restore`; after a crash between the removal and
        storing this result, the execution snapshot still lists them all."""
        path = "roles_suspend"
        if not self.manage_roles:
            return self._not_native(path, self.roles_unmanaged)

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            held = [a for a in self._roles_held(vendor, user) if self._suspends(a)]
            taken = self._snapshot(account, user, roles=[role_state(a) for a in held])
            steps = [self._role_removal(vendor, user, assignment) for assignment in held]
            return self._steps(path, steps, snapshot=taken)

        return self._run(path, work)

    def roles_restore(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Assign back the snapshot's roles the user does not hold now, to the same user only."""
        path = "roles_restore"
        if not self.manage_roles:
            return self._not_native(path, self.roles_unmanaged)
        wanted = snapshot.state.get("roles")
        if snapshot.state.get("connector") != self.kind or wanted is None:
            error = f"The snapshot holds no {self.vendor} admin roles to restore."
            return self._refused(path, "snapshot_without_roles", error)

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            same_user(self.vendor, account, user, snapshot.state.get("user_id"))
            return self._steps(path, self._roles_converge(vendor, user, wanted, exactly=False))

        return self._run(path, work)

    def change_undo(self, *, account: ProtectedAccount, change: ReportedChange) -> ExecutionResult:
        """Undo one change reported inside the window (R-35). What the vendor cannot undo is
        `capability_missing`, with the manual step in words."""
        path = "change_undo"
        undo = self._undoers().get(change.kind)
        if undo is None:
            why = self.not_undone.get(
                change.kind, f"The {self.vendor} connector cannot undo {change.kind}."
            )
            return self._not_native(path, why)
        if change.kind == ChangeKind.PRIVILEGED_ROLE and not self.manage_roles:
            return self._not_native(path, self.roles_unmanaged)

        def work(vendor: VendorClient) -> ExecutionResult:
            user = self._user(vendor, account)
            if change.target.get("user_id") is not None:
                same_user(self.vendor, account, user, change.target["user_id"])
            return undo(vendor, user, change)

        return self._run(path, work)

    def mailbox_delegate_add(
        self, *, mailbox: ProtectedAccount, delegate: ProtectedAccount
    ) -> ExecutionResult:
        """Mailbox delegation is the vendor's own where it has one (Google overrides this)."""
        return self._not_native("mailbox_delegate_add", self.no_mailbox_delegation)

    def mailbox_delegate_remove(
        self, *, mailbox_address: str, delegate_address: str
    ) -> ExecutionResult:
        return self._not_native("mailbox_delegate_remove", self.no_mailbox_delegation)

    # --- the vendor's part ------------------------------------------------------------------

    def _client_built(self) -> VendorClient:
        """The client from the settings and the credential read now (VendorError if unusable)."""
        raise NotImplementedError

    def _user(self, vendor: VendorClient, account: ProtectedAccount) -> DirectoryUser:
        raise NotImplementedError

    def _methods(self, vendor: VendorClient, user: DirectoryUser) -> list[AuthMethod]:
        raise NotImplementedError

    def _method_delete(self, vendor: VendorClient, user: DirectoryUser, method: AuthMethod) -> None:
        raise NotImplementedError

    def _roles_held(self, vendor: VendorClient, user: DirectoryUser) -> list[RoleAssignment]:
        raise NotImplementedError

    def _role_unassign(
        self, vendor: VendorClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        raise NotImplementedError

    def _role_assign(self, vendor: VendorClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        raise NotImplementedError

    def _enabled_set(self, vendor: VendorClient, user: DirectoryUser, enabled: bool) -> None:
        raise NotImplementedError

    def _changes(
        self, vendor: VendorClient, user: DirectoryUser, since: datetime
    ) -> list[ReportedChange]:
        raise NotImplementedError

    def _pass_issue(
        self, vendor: VendorClient, user: DirectoryUser
    ) -> tuple[TemporaryPass, dict[str, Any]]:
        """The pass the vendor issued, and what the result says of it beyond the pass itself."""
        raise NotImplementedError

    def _sessions_end(self, vendor: VendorClient, user: DirectoryUser) -> Step:
        """The step ending the user's sessions (R-34)."""
        raise NotImplementedError

    def _undoers(self) -> dict[str, Undo]:
        """How each kind of reported change is undone, by `ChangeKind`."""
        raise NotImplementedError

    def _vendor_state(self, vendor: VendorClient, user: DirectoryUser) -> dict[str, Any]:
        """What the vendor's snapshot records beyond the enabled state, methods and roles."""
        return {}

    def _unlock(self, vendor: VendorClient, user: DirectoryUser) -> bool:
        """Let the user sign in again; whether anything changed."""
        if user.enabled:
            return False
        self._enabled_set(vendor, user, True)
        return True

    def _pass_refusal(self, user: DirectoryUser) -> VendorError | None:
        """Why the owner could not use a pass for `user`, or None."""
        return None if user.enabled else self._cannot_sign_in(user, "disabled")

    def _suspends(self, assignment: RoleAssignment) -> bool:
        """Whether `roles_suspend` removes this assignment (all admin roles, by default)."""
        return True

    def _removal_refused(self, method: AuthMethod) -> str | None:
        """Why the vendor cannot delete `method` (a person does), or None."""
        return None

    # --- shared steps -----------------------------------------------------------------------

    def _snapshot(self, account: ProtectedAccount, user: DirectoryUser, **state: Any) -> Snapshot:
        base = {"connector": self.kind, "user_id": user.id, "username": user.username}
        return Snapshot(account_external_id=account.external_id, state={**base, **state})

    def _snapshot_of(
        self, vendor: VendorClient, account: ProtectedAccount, user: DirectoryUser, **extra: Any
    ) -> Snapshot:
        """What a revert needs: enabled state, methods, admin roles. Roles are None when the
        connector leaves them alone, or when it may not read them (the vendor's 403): the
        recovery goes on and the role steps stay manual."""
        methods = [method_state(method) for method in self._methods(vendor, user)]
        roles: list[dict[str, Any]] | None = None
        if self.manage_roles:
            try:
                roles = [role_state(held) for held in self._roles_held(vendor, user)]
            except VendorError as error:
                if error.kind != FORBIDDEN:
                    raise
        return self._snapshot(
            account,
            user,
            enabled=user.enabled,
            methods=methods,
            roles=roles,
            **self._vendor_state(vendor, user),
            **extra,
        )

    def _pass_user(self, vendor: VendorClient, account: ProtectedAccount) -> DirectoryUser:
        """The user, who must be able to use a pass (VendorError otherwise)."""
        user = self._user(vendor, account)
        refusal = self._pass_refusal(user)
        if refusal is not None:
            raise refusal
        return user

    def _method_removal(
        self, vendor: VendorClient, user: DirectoryUser, method: AuthMethod
    ) -> Step:
        label = f"removed {method.kind} method {method.id}"
        return label, partial(self._method_delete, vendor, user, method)

    def _role_removal(
        self, vendor: VendorClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> Step:
        label = f"removed {role_label(role_state(assignment))}"
        return label, partial(self._role_unassign, vendor, user, assignment)

    def _credentials_revert(
        self, vendor: VendorClient, user: DirectoryUser, state: State, report: Report
    ) -> list[Step]:
        """Steps removing the methods the snapshot does not list; `report` gets those the
        vendor cannot remove, and the listed ones gone since (no one can enrol them again but
        their owner)."""
        recorded: list[dict[str, Any]] = state["methods"]

        def plan() -> list[Step]:
            known = {method["id"] for method in recorded}
            current = self._methods(vendor, user)
            added = [method for method in current if method.id not in known]
            present = {method.id for method in current}
            report["not_removable"] = [
                method_state(m) for m in added if self._removal_refused(m) is not None
            ]
            report["not_restorable"] = [m for m in recorded if m["id"] not in present]
            return [
                self._method_removal(vendor, user, m)
                for m in added
                if self._removal_refused(m) is None
            ]

        return planned("read the authentication methods", plan)

    def _roles_revert(
        self, vendor: VendorClient, user: DirectoryUser, state: State, report: Report
    ) -> list[Step]:
        """Steps making the admin roles exactly the snapshot's (granted since: removed)."""
        if not self.manage_roles:
            report["not_restored"].append(f"Admin roles: {self.roles_unmanaged}")
            return []
        if state.get("roles") is None:
            report["not_restored"].append(
                "Admin roles: the snapshot could not record them; check them in the admin console."
            )
            return []
        converge = partial(self._roles_converge, vendor, user, state["roles"], exactly=True)
        return planned("read the admin role assignments", converge)

    def _roles_converge(
        self,
        vendor: VendorClient,
        user: DirectoryUser,
        wanted: list[dict[str, Any]],
        *,
        exactly: bool,
    ) -> list[Step]:
        """Steps assigning back the `wanted` roles the user does not hold, and (`exactly`, a
        revert) removing the ones held that are not wanted."""
        held = self._roles_held(vendor, user)
        wanted_keys = {(role["role_id"], role["scope"]) for role in wanted}
        held_keys = {(assignment.role_id, assignment.scope) for assignment in held}
        steps = [
            self._role_removal(vendor, user, assignment)
            for assignment in held
            if exactly and (assignment.role_id, assignment.scope) not in wanted_keys
        ]
        return steps + [
            (f"restored {role_label(role)}", partial(self._role_assign, vendor, user, role))
            for role in wanted
            if (role["role_id"], role["scope"]) not in held_keys
        ]

    def _enabled_revert(
        self, vendor: VendorClient, user: DirectoryUser, state: State, report: Report
    ) -> list[Step]:
        """The step putting back the enabled state the snapshot recorded, if it differs."""
        if user.enabled == state["enabled"]:
            return []
        label = "account enabled" if state["enabled"] else "account disabled"
        return [(label, partial(self._enabled_set, vendor, user, state["enabled"]))]

    # --- results ----------------------------------------------------------------------------

    @property
    def _log(self) -> logging.Logger:
        return logging.getLogger(f"recovery.connectors.{self.kind}")

    def _vendor(self) -> VendorClient:
        return self._client if self._client is not None else self._client_built()

    def _run(self, path: str, work: Callable[[VendorClient], ExecutionResult]) -> ExecutionResult:
        try:
            return work(self._vendor())
        except VendorError as error:
            return self._failure(path, error)

    def _describe(self, error: VendorError) -> str:
        """A failure in words: the vendor's status, code and message, with what to do when the
        connector knows; or the connector's own message."""
        if error.kind not in VENDOR_KINDS:
            return error.message
        hint = self.hints.get(error.kind)
        return f"{str(error).rstrip('.')}." + (f" {hint}" if hint else "")

    def _codes(self, error: VendorError) -> dict[str, Any]:
        return {
            "code": f"{self.kind}.{error.kind}",
            "vendor_code": error.code,
            "status": error.status,
        }

    def _failure(
        self,
        path: str,
        error: VendorError,
        *,
        snapshot: Snapshot | None = None,
        text: str = "",
        **detail: Any,
    ) -> ExecutionResult:
        """A failed call as a result, in words `text` or else the error's. Vendor messages
        name users and objects, never a credential."""
        text = text or self._describe(error)
        self._log.warning(
            "%s connector (tenant %s): %s failed: %s", self.kind, self.tenant.pk, path, text
        )
        return ExecutionResult(
            ok=False,
            connector=self.kind,
            path=path,
            snapshot=snapshot,
            detail={**self._codes(error), **detail},
            error=text,
        )

    def _refused(self, path: str, code: str, error: str) -> ExecutionResult:
        """The connector's own refusal, before asking the vendor anything."""
        return self._failure(path, VendorError(code, None, message=error))

    def _not_native(self, path: str, why: str) -> ExecutionResult:
        """`capability_missing`, saying why and what a person does instead."""
        return replace(capability_missing(self.kind, path), error=why)

    def _cannot_sign_in(self, user: DirectoryUser, status: str) -> VendorError:
        message = (
            f"{user.username} cannot sign in to {self.vendor} ({status}), so a temporary pass "
            "would not let the owner in: unlock or enable the account first."
        )
        return VendorError(USER_DISABLED, None, message=message)

    def _lifetime_refused(self, path: str, minutes: int) -> ExecutionResult | None:
        """The refusal of a pass lifetime outside 1..480 minutes (R-31), or None."""
        if 1 <= minutes <= MAX_PASS_MINUTES:
            return None
        error = f"A pass lives 1 to {MAX_PASS_MINUTES} minutes, not {minutes}."
        return self._refused(path, "lifetime_invalid", error)

    def _issued(
        self, path: str, issued: TemporaryPass, lifetime_minutes: int, **detail: Any
    ) -> tuple[ExecutionResult, TemporaryPass]:
        """The answer to `temporary_pass_issue`; the log names the pass, never its secret."""
        self._log.info(
            "%s connector (tenant %s): temporary pass %s issued (%d minutes)",
            self.kind,
            self.tenant.pk,
            issued.id,
            lifetime_minutes,
        )
        return self._ok(path, **pass_detail(issued, lifetime_minutes), **detail), issued

    def _ok(self, path: str, *, snapshot: Snapshot | None = None, **detail: Any) -> ExecutionResult:
        return ExecutionResult(
            ok=True, connector=self.kind, path=path, snapshot=snapshot, detail=detail
        )

    def _undone(self, change: ReportedChange, steps: list[Step]) -> ExecutionResult:
        return self._steps("change_undo", steps, change_id=change.id)

    def _steps(
        self, path: str, steps: list[Step], *, snapshot: Snapshot | None = None, **detail: Any
    ) -> ExecutionResult:
        """Run every step, each on its own: one that fails does not stop the others, and the
        result names what was done and what was not. A failed result carries the first
        failure's codes, like a single call's."""
        done: list[str] = []
        failed: list[dict[str, str]] = []
        first: VendorError | None = None
        for label, step in steps:
            try:
                step()
            except VendorError as error:
                self._log.warning(
                    "%s connector (tenant %s): %s: %s failed: %s",
                    self.kind,
                    self.tenant.pk,
                    path,
                    label,
                    error,
                )
                failed.append(
                    {
                        "step": label,
                        "code": self._codes(error)["code"],
                        "error": self._describe(error),
                    }
                )
                first = first or error
            else:
                done.append(label)
        summary = {"done": done, "failed": failed, **detail}
        if first is None:
            return self._ok(path, snapshot=snapshot, **summary)
        text = (
            f"{len(failed)} of {len(steps)} steps failed, {len(done)} done; "
            f"first failure: {failed[0]['step']}: {failed[0]['error']}"
        )
        return self._failure(path, first, snapshot=snapshot, text=text, **summary)
