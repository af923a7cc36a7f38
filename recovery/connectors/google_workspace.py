"""The Google Workspace connector: a recovery really happens in the tenant's Workspace.

Built on `GoogleClient` (Google's Admin SDK client; a service account with domain-wide
delegation acting as the administrator `admin_email`), it takes each step of a cloud recovery:

- `execute` creates no credential. For `mfa_reset` and `temporary_access` it checks the user
  can sign in and has 2-Step Verification on, snapshots 2SV, app passwords, OAuth grants and
  admin roles, and answers `detail["next"] == "temporary_pass"`; `unlock` lifts a suspension.
- `temporary_pass_issue`, from the owner's artifact session only: a new set of backup codes
  (the old set stops working), joined by spaces in `TemporaryPass.secret`. With one the owner
  passes 2SV with their password and enrols their new second step. Google never expires
  them: `revoke_temporary_access` invalidates them when Vouchsafe's lifetime ends.
- Containment: `sessions_revoke` signs the user out everywhere and deletes every OAuth grant
  and app password (they let mail clients in whatever the sessions); `roles_suspend` /
  `roles_restore` remove and assign back admin roles (R-19).
- The window (R-35): `changes_since` reads the Reports API; `change_undo` turns 2SV off for a
  new enrolment (and signs the user out), deletes a new OAuth grant, or removes a new role.
- Mailbox delegation (issue 14): `mailbox_delegate_add` / `mailbox_delegate_remove` are
  Gmail's `users.settings.delegates` create and delete, acting as the mailbox's own user
  (scope `gmail.settings.sharing`); without that scope delegated (`manage_delegates` off) they
  are tracked manual steps.
- `revert`: OAuth grants and app passwords deleted, backup codes invalidated, admin roles and
  the suspension as the snapshot had them, then signed out; every step runs, and the result
  names those that failed.

Not native, so tracked as manual steps (absent from `capabilities`, `capability_missing` with
the reason): removing one 2SV method (the Directory API neither lists nor deletes them, only
turns 2SV off as a whole); a password reset (Google has no reset the owner completes, and
backup codes only pass the second step); setting the owner's password; undoing a recovery
address or a forwarding rule (the audit event carries no previous value; Gmail's settings are
another API) and a mail delegate (no audit event).

What the three cloud connectors share is in `vendor_connector`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from google.oauth2 import service_account

from tenants.choices import CaseType

from ..models import ProtectedAccount
from .base import Capability, ExecutionResult, Health
from .cloud import (
    AuthMethod,
    ChangeKind,
    DirectoryUser,
    ReportedChange,
    RoleAssignment,
    TemporaryPass,
)
from .google_client import GoogleClient, WorkspaceUser
from .vendor_connector import (
    Report,
    State,
    Step,
    Undo,
    VendorConnector,
    check_credential_reference,
    check_service_url,
    credential_invalid,
    json_credential,
    planned,
    settings_filled,
    target_unknown,
)
from .vendor_http import VendorError

if TYPE_CHECKING:
    from .validation import _Errors

KIND = "google_workspace"
# The case types backup codes serve: the owner has their password but not their second step.
PASS_CASES = frozenset({CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS})
RESET_NOT_NATIVE = (
    "Google Workspace has no password reset the owner completes, and backup codes pass only "
    "the second step: the password reset stays a manual step."
)
NO_TWO_STEP = (
    "The user has 2-Step Verification off, so backup codes would not help them sign in: "
    "use the manual steps."
)
TWO_STEP_NOT_REMOVED = (
    "Google cannot remove one 2-Step Verification method: the owner removes it in their "
    "Google Account (Security), or an administrator turns 2SV off."
)
# The `AuthMethod.kind` of what `methods_list` answers
APP_PASSWORD = "app_password"  # noqa: S105 - a name, not a password
TWO_STEP_OFF = "two_step_off"  # the failure kind of a user without 2SV (no codes for them)
NOT_UNDONE = {
    ChangeKind.ADDRESS_CHANGED: (
        "Google's audit event gives no previous recovery address to put back: review it in "
        "the Admin console (Users > the user > Security)."
    ),
    ChangeKind.MAILBOX_RULE: (
        "Forwarding is a Gmail setting, outside the Admin SDK: remove it in the user's Gmail "
        "settings and review the mailbox."
    ),
    ChangeKind.DELEGATE_GRANTED: (
        "Gmail delegates are outside the Admin SDK (and no audit event reports them): remove "
        "the delegate in the user's Gmail settings."
    ),
}

GOOGLE_DEFAULTS: dict[str, Any] = {
    "customer_id": "my_customer",  # the delegated administrator's own customer
    "service_account_key_file": "",
    "service_account_key_env": "",
    "token_uri": "https://oauth2.googleapis.com/token",
    "api_endpoint": "https://admin.googleapis.com",
    # Role management needs the `admin.directory.rolemanagement` scope delegated; without it,
    # R-19 stays a tracked manual step.
    "manage_roles": True,
    # Gmail delegates need `gmail.settings.sharing` delegated; without it, a mailbox
    # delegation is granted and removed by a person (tracked manual steps).
    "manage_delegates": True,
    "gmail_endpoint": "https://gmail.googleapis.com",
}
DELEGATES_UNMANAGED = (
    "This connector leaves Gmail delegates alone (manage_delegates is off: the "
    "gmail.settings.sharing scope is not delegated); a person grants and removes the "
    "delegation in the Admin console or the mailbox's Gmail settings."
)


def validate_google_settings(raw: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    """The Workspace settings with defaults filled in; problems go to `errors` by name.

    `admin_email` (the administrator the service account acts as) and the service account's
    JSON key, named by `service_account_key_file` or `service_account_key_env`.
    """
    data = settings_filled(errors, raw, GOOGLE_DEFAULTS, required=("admin_email",))
    if data["admin_email"]:
        try:
            validate_email(data["admin_email"])
        except ValidationError:
            errors.add("admin_email", "Give the e-mail address of a Workspace administrator.")
    customer = data["customer_id"]
    if customer != "my_customer" and not (customer[:1] == "C" and customer[1:].isalnum()):
        errors.add("customer_id", "Give the customer ID (C0...) or my_customer.")
    data["token_uri"] = check_service_url(errors, "token_uri", data["token_uri"], path_allowed=True)
    data["api_endpoint"] = check_service_url(errors, "api_endpoint", data["api_endpoint"])
    data["gmail_endpoint"] = check_service_url(errors, "gmail_endpoint", data["gmail_endpoint"])
    check_credential_reference(
        errors, data, env=("service_account_key_env",), file=("service_account_key_file",)
    )
    return data


class GoogleWorkspaceConnector(VendorConnector[GoogleClient]):
    """One tenant's Workspace. `client` replaces the one built from `settings` (tests)."""

    kind = KIND
    vendor = "Google Workspace"
    native = frozenset(Capability) - {Capability.METHODS_REMOVE, Capability.PASSWORD_SET}
    execute_case_types = PASS_CASES | {CaseType.UNLOCK}
    pass_case_types = PASS_CASES
    not_set_here = RESET_NOT_NATIVE
    not_executed = {CaseType.PASSWORD_RESET: RESET_NOT_NATIVE}
    roles_unmanaged = (
        "This connector leaves admin roles alone (manage_roles is off: the rolemanagement "
        "scope is not delegated); change them in the Google Admin console."
    )
    not_undone = NOT_UNDONE
    no_mailbox_delegation = DELEGATES_UNMANAGED

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manage_delegates: bool = self.settings.get("manage_delegates", True)
        if not self.manage_delegates:
            self.capabilities = self.capabilities - {Capability.MAILBOX_DELEGATE}

    # --- the operations that are Google's own -----------------------------------------------

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Invalidate the user's backup codes (the issued set; none is left)."""

        def work(google: GoogleClient) -> ExecutionResult:
            google.backup_codes_invalidate(self._user(google, account).id)
            return self._ok("revoke_temporary_access", backup_codes_invalidated=True)

        return self._run("revoke_temporary_access", work)

    def health(self) -> Health:
        """Reads the delegated administrator: the key, the delegation of the read scope and
        the subject's admin rights in one call; each other scope is proved by its first use."""
        admin = self.settings["admin_email"]
        try:
            self._vendor().user_get(admin)
        except VendorError as error:
            detail = f"Google Workspace as {admin}: {self._describe(error)}"
            return Health(ok=False, detail=detail)
        return Health(ok=True, detail=f"Google Workspace answered as the administrator {admin}.")

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Delete every OAuth grant and app password (they let mail clients in whatever the
        sessions), then sign the user out everywhere (R-34)."""

        def work(google: GoogleClient) -> ExecutionResult:
            user = self._user(google, account)
            steps = [*self._contain(google, user), self._sessions_end(google, user)]
            return self._steps("sessions_revoke", steps)

        return self._run("sessions_revoke", work)

    def mailbox_delegate_add(
        self, *, mailbox: ProtectedAccount, delegate: ProtectedAccount
    ) -> ExecutionResult:
        """Make `delegate` a Gmail delegate of `mailbox` (both users of this Workspace). The
        answer names both by primary address and id; a delegate already there counts as done."""
        path = "mailbox_delegate_add"
        if not self.manage_delegates:
            return self._not_native(path, DELEGATES_UNMANAGED)

        def work(google: GoogleClient) -> ExecutionResult:
            owner = self._user(google, mailbox)
            member = self._user(google, delegate)
            added = google.delegate_create(owner.username, member.username)
            return self._ok(
                path,
                mailbox_address=owner.username,
                mailbox_user_id=owner.id,
                delegate_address=member.username,
                delegate_user_id=member.id,
                already_there=not added,
            )

        return self._run(path, work)

    def mailbox_delegate_remove(
        self, *, mailbox_address: str, delegate_address: str
    ) -> ExecutionResult:
        """Take away the delegate `mailbox_delegate_add` made, by the addresses it answered;
        one already gone counts as removed."""
        path = "mailbox_delegate_remove"
        if not self.manage_delegates:
            return self._not_native(path, DELEGATES_UNMANAGED)

        def work(google: GoogleClient) -> ExecutionResult:
            google.delegate_delete(mailbox_address, delegate_address)
            return self._ok(
                path, mailbox_address=mailbox_address, delegate_address=delegate_address
            )

        return self._run(path, work)

    # --- Google's part of the shared operations ---------------------------------------------

    def _client_built(self) -> GoogleClient:
        """The token endpoint is the settings' `token_uri`, whatever the key file says."""
        settings = self.settings
        env, file = settings["service_account_key_env"], settings["service_account_key_file"]
        key = {**json_credential(env=env, file=file), "token_uri": settings["token_uri"]}
        try:
            service_account.Credentials.from_service_account_info(key)
        except (ValueError, TypeError):
            holds_no = "service account key (Google's JSON key file)"
            raise credential_invalid(env=env, file=file, holds_no=holds_no) from None
        return GoogleClient(
            key,
            settings["admin_email"],
            customer=settings["customer_id"],
            api_endpoint=settings["api_endpoint"],
            gmail_endpoint=settings.get("gmail_endpoint") or None,
        )

    def _user(self, google: GoogleClient, account: ProtectedAccount) -> WorkspaceUser:
        return google.user_get(account.idp_subject or account.username)

    def _methods(self, google: GoogleClient, user: DirectoryUser) -> list[AuthMethod]:
        """The user's app passwords: the only authenticators the Directory API lists (2SV
        methods are not)."""
        return google.app_passwords_list(user.id)

    def _method_delete(self, google: GoogleClient, user: DirectoryUser, method: AuthMethod) -> None:
        google.app_password_delete(user.id, method.id)

    def _removal_refused(self, method: AuthMethod) -> str | None:
        return None if method.kind == APP_PASSWORD else TWO_STEP_NOT_REMOVED

    def _roles_held(self, google: GoogleClient, user: DirectoryUser) -> list[RoleAssignment]:
        return google.role_assignments_list(user.id)

    def _role_unassign(
        self, google: GoogleClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        google.role_assignment_delete(assignment.id)

    def _role_assign(self, google: GoogleClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        google.role_assignment_create(user.id, role["role_id"], role["scope"])

    def _enabled_set(self, google: GoogleClient, user: DirectoryUser, enabled: bool) -> None:
        google.suspended_set(user.id, not enabled)

    def _vendor_state(self, google: GoogleClient, user: WorkspaceUser) -> dict[str, Any]:
        return {
            "two_step_enrolled": user.two_step_enrolled,
            "oauth_grants": [grant.client_id for grant in google.tokens_list(user.id)],
        }

    def _pass_refusal(self, user: WorkspaceUser) -> VendorError | None:
        """Backup codes serve a user who can sign in and has 2SV on."""
        if not user.enabled:
            return self._cannot_sign_in(user, "suspended")
        if not user.two_step_enrolled:
            return VendorError(TWO_STEP_OFF, None, message=NO_TWO_STEP)
        return None

    def _contain(self, google: GoogleClient, user: WorkspaceUser) -> list[Step]:
        """Steps deleting every OAuth grant and app password (R-34)."""

        def grants() -> list[Step]:
            return [
                self._grant_revoke(google, user, grant.client_id)
                for grant in google.tokens_list(user.id)
            ]

        def app_passwords() -> list[Step]:
            return [self._method_removal(google, user, m) for m in self._methods(google, user)]

        return [
            *planned("read the OAuth grants", grants),
            *planned("read the app passwords", app_passwords),
        ]

    def _grant_revoke(self, google: GoogleClient, user: WorkspaceUser, client_id: str) -> Step:
        label = f"revoked the OAuth grant of {client_id}"
        return label, partial(google.token_delete, user.id, client_id)

    def _changes(
        self, google: GoogleClient, user: DirectoryUser, since: datetime
    ) -> list[ReportedChange]:
        """The Reports API names the user by primary address."""
        return google.changes_since(user.username, since)

    def _pass_issue(
        self, google: GoogleClient, user: DirectoryUser
    ) -> tuple[TemporaryPass, dict[str, Any]]:
        """A new set of backup codes, joined by spaces (each passes 2SV once; the old set stops
        working; Google does not expire them)."""
        codes = google.backup_codes_generate(user.id)
        issued = TemporaryPass(
            id=f"google-backup-codes:{secrets.token_hex(8)}",
            secret=" ".join(code.secret for code in codes),
            usable_once=True,
        )
        return issued, {"codes": len(codes)}

    def _sessions_end(self, google: GoogleClient, user: DirectoryUser) -> Step:
        return "signed out", partial(google.sign_out, user.id)

    def _credentials_revert(
        self, google: GoogleClient, user: WorkspaceUser, state: State, report: Report
    ) -> list[Step]:
        """Every OAuth grant and app password deleted (not only those added since: either lets
        a mail client in whatever the sessions), and the backup codes invalidated."""
        if user.two_step_enrolled:
            report["not_restored"].append(
                "2-Step Verification methods enrolled since: Google cannot tell them apart "
                "or remove one, and turning 2SV off would let whoever holds the password enrol "
                "first; review them in the Admin console."
            )
        invalidate = ("backup codes invalidated", partial(google.backup_codes_invalidate, user.id))
        return [*self._contain(google, user), invalidate]

    def _undoers(self) -> dict[str, Undo]:
        return {
            ChangeKind.MFA_ENROLLED: self._undo_enrolment,
            ChangeKind.OAUTH_CONSENT: self._undo_consent,
            ChangeKind.PRIVILEGED_ROLE: self._undo_role,
        }

    def _undo_enrolment(
        self, google: GoogleClient, user: WorkspaceUser, change: ReportedChange
    ) -> ExecutionResult:
        """Turn 2SV off (the new method goes with every other: Google removes none alone) and
        sign the user out; the owner enrols again, after the review."""
        turn_off = ("2-Step Verification turned off", partial(google.two_step_turn_off, user.id))
        return self._undone(change, [turn_off, self._sessions_end(google, user)])

    def _undo_consent(
        self, google: GoogleClient, user: WorkspaceUser, change: ReportedChange
    ) -> ExecutionResult:
        client_id = change.target.get("client_id")
        if not client_id:
            raise target_unknown("The event names no OAuth client.")
        return self._undone(change, [self._grant_revoke(google, user, client_id)])

    def _undo_role(
        self, google: GoogleClient, user: WorkspaceUser, change: ReportedChange
    ) -> ExecutionResult:
        """Remove the assignments of the role the event names (`ROLE_NAME`, which is the
        role's name in the Directory API too)."""
        role_name = change.target.get("ROLE_NAME")
        if not role_name:
            raise target_unknown("The event names no role.")
        granted = [a for a in self._roles_held(google, user) if a.role_name == role_name]
        return self._undone(change, [self._role_removal(google, user, a) for a in granted])
