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

What the three cloud connectors share (settings checks, the credential read at call time,
failures as results, steps that all run and report, roles, the same-user guard) is in
`vendor_connector`; this module holds what is Okta's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

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
from .okta_client import OKTA_SCOPES, OktaApiToken, OktaClient, OktaServiceApp, OktaUser
from .vendor_connector import (
    Report,
    State,
    Step,
    Undo,
    VendorConnector,
    check_credential_reference,
    check_service_url,
    credential_invalid,
    read_credential,
    settings_filled,
    target_unknown,
)
from .vendor_http import NOT_FOUND, VendorError

if TYPE_CHECKING:
    from .validation import _Errors

KIND = "okta"
# Case types whose credential is the one-time pass the owner gets in their artifact session.
PASS_CASES = frozenset({CaseType.PASSWORD_RESET, CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS})
# No login has this form: the health probe's 404 proves the call was authenticated and allowed.
HEALTH_PROBE = "vouchsafe-health-probe.invalid"
ROLE_SCOPE = "okta.roles.manage"
OKTA_APP_PREFIX = "0oa"  # Okta's application ids, which are also the OAuth client ids
LOCK_OUT_NOT_RESTORED = (
    "The lock-out: Okta has no call that locks a user; suspend them in the Admin Console if "
    "the account must stay closed."
)

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


def _targets(
    change: ReportedChange, wanted: Callable[[dict[str, Any]], bool], missing: str
) -> list[str]:
    """The ids of the System Log event's targets that `wanted` accepts; refused (`missing`)
    when there are none, for a person to review."""
    found = [t["id"] for t in change.target.get("targets", []) if t.get("id") and wanted(t)]
    if not found:
        raise target_unknown(missing)
    return found


class OktaConnector(VendorConnector[OktaClient]):
    """One tenant's Okta org. `client` replaces the one built from `settings` (tests)."""

    kind = KIND
    vendor = "Okta"
    native = frozenset(Capability) - {Capability.PASSWORD_SET, Capability.MAILBOX_DELEGATE}
    no_mailbox_delegation = (
        "Okta holds no mailboxes: a person grants and removes the delegation in the mail "
        "system that holds the mailbox."
    )
    execute_case_types = PASS_CASES | {CaseType.UNLOCK}
    pass_case_types = PASS_CASES
    not_set_here = (
        "Vouchsafe does not set Okta passwords: the owner sets theirs at Okta with the "
        "one-time reset link."
    )
    roles_unmanaged = (
        "This connector leaves admin roles alone (manage_roles is off: only a Super Admin "
        "service app may change them); change them in the Okta Admin Console."
    )
    not_undone = {
        ChangeKind.MAILBOX_RULE: "Okta holds no mailbox rules: remove the rule in the mail "
        "system that holds the mailbox.",
        ChangeKind.DELEGATE_GRANTED: "Okta holds no mail delegates: remove the delegate in the "
        "mail system that holds the mailbox.",
    }

    # --- the operations that are Okta's own -------------------------------------------------

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

    def health(self) -> Health:
        org = self.settings["org_url"]
        try:
            self._vendor().user_get(HEALTH_PROBE)
        except VendorError as error:
            if error.kind != NOT_FOUND:
                return Health(ok=False, detail=f"Okta at {org}: {self._describe(error)}")
        return Health(
            ok=True, detail=f"Okta at {org} accepted the credential and let it read users."
        )

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult:
        """End Okta sessions, revoke OAuth/OIDC tokens and forget remembered devices."""

        def work(okta: OktaClient) -> ExecutionResult:
            okta.sessions_clear(self._user(okta, account).id)
            return self._ok(
                "sessions_revoke",
                sessions_ended=True,
                oauth_tokens_revoked=True,
                devices_forgotten=True,
            )

        return self._run("sessions_revoke", work)

    # --- Okta's part of the shared operations -----------------------------------------------

    def _client_built(self) -> OktaClient:
        settings = self.settings
        if settings["api_token_env"]:
            token = read_credential(env=settings["api_token_env"])
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
            holds_no = "RSA or EC private key (PEM or JWK)"
            raise credential_invalid(env=env, file=file, holds_no=holds_no) from None

    def _user(self, okta: OktaClient, account: ProtectedAccount) -> OktaUser:
        return okta.user_get(account.idp_subject or account.username)

    def _methods(self, okta: OktaClient, user: DirectoryUser) -> list[AuthMethod]:
        return okta.factors_list(user.id)

    def _method_delete(self, okta: OktaClient, user: DirectoryUser, method: AuthMethod) -> None:
        """Unenrol one factor. Unenrolling Okta Verify push or FastPass takes the user's other
        Okta Verify factors with it (Okta's rule); deleting those then finds them gone: done."""
        okta.factor_delete(user.id, method.id)

    def _roles_held(self, okta: OktaClient, user: DirectoryUser) -> list[RoleAssignment]:
        return okta.roles_list(user.id)

    def _role_unassign(
        self, okta: OktaClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        okta.role_unassign(user.id, assignment.id)

    def _role_assign(self, okta: OktaClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        okta.role_assign(user.id, role["role_id"], role["scope"])

    def _vendor_state(self, okta: OktaClient, user: OktaUser) -> dict[str, Any]:
        return {"status": user.status}

    def _pass_refusal(self, user: OktaUser) -> VendorError | None:
        """A suspended or deactivated user cannot sign in with a new password."""
        return None if user.enabled else self._cannot_sign_in(user, user.status)

    def _unlock(self, okta: OktaClient, user: OktaUser) -> bool:
        """A `LOCKED_OUT` user back to `ACTIVE`; one who cannot sign in otherwise is refused."""
        locked = user.status == "LOCKED_OUT"
        if locked:
            okta.unlock(user.id)
        elif not user.enabled:
            raise self._cannot_sign_in(user, user.status)
        return locked

    def _enabled_revert(
        self, okta: OktaClient, user: OktaUser, state: State, report: Report
    ) -> list[Step]:
        """Okta has no call that locks a user: a lock-out the recovery lifted is reported."""
        if state["status"] == "LOCKED_OUT" and user.status != "LOCKED_OUT":
            report["not_restored"].append(LOCK_OUT_NOT_RESTORED)
        return []

    def _changes(
        self, okta: OktaClient, user: DirectoryUser, since: datetime
    ) -> list[ReportedChange]:
        """The System Log names the user by id."""
        return okta.changes_since(user.id, since)

    def _pass_issue(
        self, okta: OktaClient, user: DirectoryUser
    ) -> tuple[TemporaryPass, dict[str, Any]]:
        """The one-time reset link. Its life at Okta is the org's reset-token setting, which
        the answer does not give."""
        return okta.password_reset_link(user.id), {}

    def _sessions_end(self, okta: OktaClient, user: DirectoryUser) -> Step:
        return "sessions revoked", partial(okta.sessions_clear, user.id)

    def _undoers(self) -> dict[str, Undo]:
        return {
            ChangeKind.MFA_ENROLLED: self._undo_enrolment,
            ChangeKind.ADDRESS_CHANGED: self._undo_address,
            ChangeKind.OAUTH_CONSENT: self._undo_consent,
            ChangeKind.PRIVILEGED_ROLE: self._undo_role,
        }

    def _undo_enrolment(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Unenrol the factor the event names (its `AuthenticatorEnrollment` target)."""
        enrolments = _targets(
            change,
            lambda target: target.get("type") == "AuthenticatorEnrollment",
            "The event names no factor: review the user's factors.",
        )
        steps: list[Step] = [
            (f"removed factor {factor_id}", partial(okta.factor_delete, user.id, factor_id))
            for factor_id in enrolments
        ]
        return self._undone(change, steps)

    def _undo_address(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Put back the recovery addresses the event reports, with their previous values."""
        previous = change.target.get("previous")
        if not previous:
            raise target_unknown("The event carries no previous address.")
        label = f"restored {', '.join(sorted(previous))}"
        return self._undone(change, [(label, partial(okta.profile_update, user.id, previous))])

    def _undo_consent(
        self, okta: OktaClient, user: OktaUser, change: ReportedChange
    ) -> ExecutionResult:
        """Withdraw the consent given to the OAuth client the event names, and its tokens."""
        clients = _targets(
            change,
            lambda target: str(target["id"]).startswith(OKTA_APP_PREFIX),
            "The event names no OAuth client.",
        )
        steps: list[Step] = [
            (
                f"withdrew the consent to {client}",
                partial(okta.client_grants_revoke, user.id, client),
            )
            for client in clients
        ]
        return self._undone(change, steps)

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
        return self._undone(change, [self._role_removal(okta, user, a) for a in matching])
