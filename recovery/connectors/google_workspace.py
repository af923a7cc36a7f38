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
- `revert`: signed out, OAuth grants and app passwords deleted, backup codes invalidated,
  admin roles and the suspension as the snapshot had them.

Not native, so tracked as manual steps (absent from `capabilities`, `capability_missing` with
the reason): removing one 2SV method (the Directory API neither lists nor deletes them, only
turns 2SV off as a whole); a password reset (Google has no reset the owner completes, and
backup codes only pass the second step); setting the owner's password; undoing a recovery
address or a forwarding rule (the audit event carries no previous value; Gmail's settings are
another API) and a mail delegate (no audit event).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from google.oauth2 import service_account

from tenants.choices import CaseType
from tenants.models import Tenant

from ..models import ProtectedAccount
from .base import Capability, ExecutionResult, Health, Snapshot, capability_missing
from .cloud import (
    AuthMethod,
    ChangeKind,
    DirectoryUser,
    ReportedChange,
    RoleAssignment,
    TemporaryPass,
)
from .google_client import GoogleClient, WorkspaceUser
from .okta import (
    CREDENTIAL_INVALID,
    VendorConnector,
    check_credential_reference,
    check_service_url,
    credential_place,
    failure_text,
    json_credential,
    lifetime_refused,
    method_state,
    not_native,
    pass_detail,
    refused,
    role_state,
    same_user,
    settings_filled,
    target_unknown,
    user_disabled,
    vendor_failure,
)
from .vendor_http import VendorError

if TYPE_CHECKING:
    from .validation import _Errors

logger = logging.getLogger(__name__)

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
}


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
    check_credential_reference(
        errors, data, env=("service_account_key_env",), file=("service_account_key_file",)
    )
    return data


class GoogleWorkspaceConnector(VendorConnector[GoogleClient]):
    """One tenant's Workspace. `client` replaces the one built from `settings` (tests)."""

    kind = KIND
    roles_unmanaged = (
        "This connector leaves admin roles alone (manage_roles is off: the rolemanagement "
        "scope is not delegated); change them in the Google Admin console."
    )

    def __init__(
        self, *, tenant: Tenant, settings: dict[str, Any], client: GoogleClient | None = None
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
            google = self._vendor()
            return self._snapshot_of(google, account, self._user(google, account))
        except VendorError as error:
            logger.warning(
                "google connector (tenant %s): snapshot failed: %s", self.tenant.pk, error
            )
            return None

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        if case_type in PASS_CASES:
            return self._run("execute", lambda google: self._prepare(google, account))
        if case_type == CaseType.UNLOCK:
            return self._run("execute", lambda google: self._unlock(google, account))
        if case_type == CaseType.PASSWORD_RESET:
            return not_native(self.kind, "execute", RESET_NOT_NATIVE)
        return capability_missing(self.kind, "execute")

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        if snapshot.state.get("connector") != self.kind:
            error = "Not a Google Workspace snapshot."
            return refused(self.kind, "revert", "snapshot_foreign", error)
        return self._run("revert", lambda google: self._revert(google, account, snapshot.state))

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Invalidate the user's backup codes (the issued set; none is left)."""

        def work(google: GoogleClient) -> ExecutionResult:
            google.backup_codes_invalidate(self._user(google, account).id)
            return self._ok("revoke_temporary_access", backup_codes_invalidated=True)

        return self._run("revoke_temporary_access", work)

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        return not_native(self.kind, "password_set", RESET_NOT_NATIVE)

    def health(self) -> Health:
        """Reads the delegated administrator: the key, the delegation of the read scope and
        the subject's admin rights in one call; each other scope is proved by its first use."""
        admin = self.settings["admin_email"]
        try:
            self._vendor().user_get(admin)
        except VendorError as error:
            return Health(ok=False, detail=f"Google Workspace as {admin}: {failure_text(error)}")
        return Health(ok=True, detail=f"Google Workspace answered as the administrator {admin}.")

    # --- the CloudConnector interface -------------------------------------------------------

    def temporary_pass_issue(
        self, *, account: ProtectedAccount, case_type: str, lifetime_minutes: int
    ) -> tuple[ExecutionResult, TemporaryPass | None]:
        """A new set of backup codes for the owner's artifact session only (each code passes
        2SV once; Google does not expire them)."""
        path = "temporary_pass_issue"
        if case_type == CaseType.PASSWORD_RESET:
            return not_native(self.kind, path, RESET_NOT_NATIVE), None
        if case_type not in PASS_CASES:
            return capability_missing(self.kind, path), None
        refusal = lifetime_refused(self.kind, path, lifetime_minutes)
        if refusal is not None:
            return refusal, None
        try:
            google = self._vendor()
            codes = google.backup_codes_generate(self._two_step_user(google, account).id)
        except VendorError as error:
            return vendor_failure(self.kind, path, error, self.tenant), None
        issued = TemporaryPass(
            id=f"google-backup-codes:{secrets.token_hex(8)}",
            secret=" ".join(code.secret for code in codes),
            usable_once=True,
        )
        return self._ok(path, codes=len(codes), **pass_detail(issued, lifetime_minutes)), issued

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult:
        def work(google: GoogleClient) -> ExecutionResult:
            return self._ok("sessions_revoke", **self._contain(google, self._user(google, account)))

        return self._run("sessions_revoke", work)

    def methods_list(self, *, account: ProtectedAccount) -> list[AuthMethod]:
        """The user's app passwords: the only authenticators the Directory API lists (2SV
        methods are not). VendorError when Google cannot answer."""
        google = self._vendor()
        return google.app_passwords_list(self._user(google, account).id)

    def method_remove(self, *, account: ProtectedAccount, method: AuthMethod) -> ExecutionResult:
        """Delete an app password; a 2SV method cannot be removed alone (manual)."""
        if method.kind != APP_PASSWORD:
            why = (
                "Google cannot remove one 2-Step Verification method: the owner removes it in "
                "their Google Account (Security), or an administrator turns 2SV off."
            )
            return not_native(self.kind, "method_remove", why)

        def work(google: GoogleClient) -> ExecutionResult:
            google.app_password_delete(self._user(google, account).id, method.id)
            return self._ok("method_remove", method=method.id, method_kind=method.kind)

        return self._run("method_remove", work)

    def changes_since(self, *, account: ProtectedAccount, since: datetime) -> list[ReportedChange]:
        """R-35's changes the Reports API holds on the user (VendorError when it cannot)."""
        google = self._vendor()
        return google.changes_since(self._user(google, account).username, since)

    def change_undo(self, *, account: ProtectedAccount, change: ReportedChange) -> ExecutionResult:
        path = "change_undo"
        undo = {
            ChangeKind.MFA_ENROLLED: self._undo_enrolment,
            ChangeKind.OAUTH_CONSENT: self._undo_consent,
            ChangeKind.PRIVILEGED_ROLE: self._undo_role,
        }.get(change.kind)
        if undo is None:
            return not_native(self.kind, path, NOT_UNDONE.get(change.kind, str(change.kind)))
        if change.kind == ChangeKind.PRIVILEGED_ROLE and not self.manage_roles:
            return not_native(self.kind, path, self.roles_unmanaged)
        return self._run(path, lambda google: undo(google, self._user(google, account), change))

    # --- the steps --------------------------------------------------------------------------

    def _prepare(self, google: GoogleClient, account: ProtectedAccount) -> ExecutionResult:
        user = self._two_step_user(google, account)
        snapshot = self._snapshot_of(google, account, user)
        return self._ok("execute", snapshot=snapshot, changed=False, next="temporary_pass")

    def _unlock(self, google: GoogleClient, account: ProtectedAccount) -> ExecutionResult:
        user = self._user(google, account)
        snapshot = self._snapshot_of(google, account, user)
        if not user.enabled:
            google.suspended_set(user.id, False)
        return self._ok("execute", snapshot=snapshot, changed=not user.enabled)

    def _contain(self, google: GoogleClient, user: WorkspaceUser) -> dict[str, Any]:
        """Sign out, and delete every OAuth grant and app password (R-34)."""
        google.sign_out(user.id)
        grants = [grant.client_id for grant in google.tokens_list(user.id)]
        for client_id in grants:
            google.token_delete(user.id, client_id)
        app_passwords = [method.id for method in google.app_passwords_list(user.id)]
        for code_id in app_passwords:
            google.app_password_delete(user.id, code_id)
        return {
            "signed_out": True,
            "oauth_grants_revoked": grants,
            "app_passwords_deleted": app_passwords,
        }

    def _revert(
        self, google: GoogleClient, account: ProtectedAccount, state: dict[str, Any]
    ) -> ExecutionResult:
        user = self._user(google, account)
        same_user(self.kind, account, user, state)
        contained = self._contain(google, user)
        google.backup_codes_invalidate(user.id)
        roles = {}
        if self.manage_roles and state.get("roles") is not None:
            roles = self._roles_converge(google, user, state["roles"])
        suspended = not state["enabled"] and user.enabled
        if suspended:
            google.suspended_set(user.id, True)
        not_restored = []
        if user.two_step_enrolled:
            not_restored.append(
                "2-Step Verification methods enrolled since: Google cannot tell them apart "
                "or remove one, and turning 2SV off would let whoever holds the password enrol "
                "first; review them in the Admin console."
            )
        return self._ok(
            "revert",
            **contained,
            backup_codes_invalidated=True,
            suspended_again=suspended,
            **roles,
            not_restored=not_restored,
        )

    def _undo_enrolment(
        self, google: GoogleClient, user: WorkspaceUser, change: ReportedChange
    ) -> ExecutionResult:
        """Turn 2SV off (the new method goes with every other: Google removes none alone) and
        sign the user out; the owner enrols again, after the review."""
        google.two_step_turn_off(user.id)
        google.sign_out(user.id)
        return self._ok("change_undo", two_step_turned_off=True, signed_out=True)

    def _undo_consent(
        self, google: GoogleClient, user: WorkspaceUser, change: ReportedChange
    ) -> ExecutionResult:
        client_id = change.target.get("client_id")
        if not client_id:
            raise target_unknown("The event names no OAuth client.")
        google.token_delete(user.id, client_id)
        return self._ok("change_undo", oauth_grants_revoked=[client_id])

    def _undo_role(
        self, google: GoogleClient, user: WorkspaceUser, change: ReportedChange
    ) -> ExecutionResult:
        """Remove the assignments of the role the event names (`ROLE_NAME`, which is the
        role's name in the Directory API too)."""
        role_name = change.target.get("ROLE_NAME")
        if not role_name:
            raise target_unknown("The event names no role.")
        granted = [a for a in self._roles_held(google, user) if a.role_name == role_name]
        for assignment in granted:
            google.role_assignment_delete(assignment.id)
        return self._ok("change_undo", roles_removed=[a.role_id for a in granted])

    # --- plumbing ---------------------------------------------------------------------------

    def _vendor(self) -> GoogleClient:
        """The client, with the key as it is now (VendorError when it is unusable). The token
        endpoint is the settings' `token_uri`, whatever the key file says."""
        if self._client is not None:
            return self._client
        settings = self.settings
        env, file = settings["service_account_key_env"], settings["service_account_key_file"]
        key = {**json_credential(env=env, file=file), "token_uri": settings["token_uri"]}
        try:
            service_account.Credentials.from_service_account_info(key)
        except (ValueError, TypeError):
            where = credential_place(env=env, file=file)
            message = f"{where} holds no service account key (Google's JSON key file)."
            raise VendorError(CREDENTIAL_INVALID, None, message=message) from None
        return GoogleClient(
            key,
            settings["admin_email"],
            customer=settings["customer_id"],
            api_endpoint=settings["api_endpoint"],
        )

    def _user(self, google: GoogleClient, account: ProtectedAccount) -> WorkspaceUser:
        return google.user_get(account.idp_subject or account.username)

    def _two_step_user(self, google: GoogleClient, account: ProtectedAccount) -> WorkspaceUser:
        """The user, who must be able to sign in and have 2SV on (what backup codes serve)."""
        user = self._user(google, account)
        if not user.enabled:
            raise user_disabled("Google Workspace", "suspended")
        if not user.two_step_enrolled:
            raise VendorError(TWO_STEP_OFF, None, message=NO_TWO_STEP)
        return user

    def _roles_held(self, google: GoogleClient, user: DirectoryUser) -> list[RoleAssignment]:
        return google.role_assignments_list(user.id)

    def _role_unassign(
        self, google: GoogleClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        google.role_assignment_delete(assignment.id)

    def _role_assign(self, google: GoogleClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        google.role_assignment_create(user.id, role["role_id"], role["scope"])

    def _snapshot_of(
        self, google: GoogleClient, account: ProtectedAccount, user: WorkspaceUser
    ) -> Snapshot:
        state: dict[str, Any] = {
            "connector": self.kind,
            "user_id": user.id,
            "username": user.username,
            "enabled": user.enabled,
            "two_step_enrolled": user.two_step_enrolled,
            "methods": [method_state(m) for m in google.app_passwords_list(user.id)],
            "oauth_grants": [grant.client_id for grant in google.tokens_list(user.id)],
        }
        if self.manage_roles:
            state["roles"] = [role_state(role) for role in self._roles_held(google, user)]
        return Snapshot(account_external_id=account.external_id, state=state)
