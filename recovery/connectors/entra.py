"""The Microsoft Entra ID connector: a recovery carried out in the tenant through Microsoft Graph.

Per case type, `execute` puts the account in the recovery state and never creates a credential:

- `unlock`: the account may sign in again (`accountEnabled`). Graph can only enable a disabled
  account; Entra's smart lockout ends by itself and has no unlock call.
- `password_reset`: refused (R-12): the pass that would complete it can also enrol MFA.
- `mfa_reset`, `temporary_access`: nothing changes. The connector checks that
  the user exists and may sign in, and the snapshot records the methods, roles and enabled
  state. The credential is a one-time Temporary Access Pass that the workflow asks for later,
  inside the owner's artifact session only (`temporary_pass_issue`, R-10, R-12). With it the
  owner binds a new authenticator, and the workflow then removes the lost ones
  (`method_remove`) and ends sessions (`sessions_revoke`, R-34).

Vouchsafe never sets an Entra password (PASSWORD_SET is not among its capabilities), so no
password passes through anyone.

Every operation is safe to repeat: deletes of something gone count as done, a role granted back
that is already held is left alone, and `revert` converges on its snapshot, so a worker that
died mid-sequence runs it again. A failed step is reported with the ones done; the others still
run (sessions are revoked even when a method could not be removed). Results carry ids, kinds,
times and Graph's own error code and message, never a secret: the client secret is read from
the environment variable the settings name, at each operation, and a pass value exists only in
the `TemporaryPass` handed to the owner's session.

What the three cloud connectors share (settings checks, the credential, failures as results,
steps that all run and report, roles, the same-user guard) is in `vendor_connector`.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import partial
from typing import Any

from tenants.choices import CaseType
from tenants.models import Tenant

from ..models import ProtectedAccount
from . import validation
from .base import Capability, ExecutionResult, Health, capability_missing
from .cloud import (
    MAX_PASS_MINUTES,
    AuthMethod,
    ChangeKind,
    DirectoryUser,
    ReportedChange,
    RoleAssignment,
    TemporaryPass,
)
from .graph_client import AUTHORITY_HOST, DELETABLE_KINDS, GraphClient
from .vendor_connector import (
    Step,
    Undo,
    VendorConnector,
    check_credential_reference,
    check_service_url,
    read_credential,
    settings_filled,
    target_unknown,
)
from .vendor_http import AUTH, FORBIDDEN, NOT_FOUND, THROTTLED, VendorError

KIND = "entra"
GRAPH_ROOT = "https://graph.microsoft.com"
GRAPH_VERSION = "/v1.0"
TEMPORARY_PASS = "temporaryAccessPass"  # noqa: S105 - Graph's name of the method kind
PASSWORD = "password"  # noqa: S105 - Graph's name of the method kind
MIN_PASS_MINUTES = 10
PASS_CASE_TYPES = frozenset({CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS})
# A Temporary Access Pass lets its holder register sign-in methods, so it cannot complete a
# password reset: password evidence never yields an MFA enrolment.
RESET_NOT_NATIVE = (
    "A Temporary Access Pass lets whoever holds it register new sign-in methods, which a "
    "password reset may not give (R-12). The owner resets their password with Microsoft's "
    "self-service password reset and an authenticator they still have; if they have none, "
    "open an MFA reset instead."
)
EXECUTE_CASE_TYPES = PASS_CASE_TYPES | {CaseType.UNLOCK}
# How far apart a method's creation and the audit record of its registration may lie.
ENROLMENT_MATCH = dt.timedelta(minutes=5)
# No user has this object id: Graph answers 404 to a caller that may read users, 403 to one
# that may not, so looking it up proves the token and the permission without reading anyone.
NOBODY = "00000000-0000-0000-0000-000000000000"
GUID = re.compile(r"^[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
DOMAIN = re.compile(
    r"^(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

# The built-in roles Microsoft labels PRIVILEGED (Entra built-in roles reference), by template
# id, which is also their role definition id in every tenant. R-19 suspends these by default.
PRIVILEGED_ROLES: dict[str, str] = {
    "db506228-d27e-4b7d-95e5-295956d6615f": "Agent ID Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "cf1c38e5-3621-4004-a7cb-879624dced7c": "Application Developer",
    "ecb2c6bf-0ab6-418e-bd87-7986f8d63bbe": "Attribute Provisioning Administrator",
    "422218e4-db15-4ef9-bbe0-8afb41546d79": "Attribute Provisioning Reader",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "25a516ed-2fa0-40ea-a2d0-12923a21473a": "Authentication Extensibility Administrator",
    "aaf43236-0c0d-4d5f-883a-6955382ac081": "B2C IEF Keyset Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "7698a772-787b-4ac8-901f-60d6b08affd2": "Cloud Device Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
    "8329153b-31d0-4727-b945-745eb3bc5f31": "Domain Name Administrator",
    "be2f45a1-457d-42af-a067-6ec1fa63bc45": "External Identity Provider Administrator",
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2": "Hybrid Identity Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "59d46f88-662b-457b-bceb-5c3809e5908f": "Lifecycle Workflows Administrator",
    "4ba39ca4-527c-499a-b93d-d9b492c50246": "Partner Tier1 Support",
    "e00e864a-17c5-4a4b-9c06-f5b95a8d5bd8": "Partner Tier2 Support",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f": "Security Operator",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
}

REQUIRED = ("tenant_id", "client_id")
DEFAULTS: dict[str, Any] = {
    "client_secret_env": "",
    "authority_host": AUTHORITY_HOST,
    "graph_url": GRAPH_ROOT,
    "ca_bundle": "",
    "tap_lifetime_minutes": 60,
    "privileged_roles": sorted(PRIVILEGED_ROLES),
}
MAX_ROLES = 200

# What to tell a person when Graph refuses, beyond Graph's own message.
HINTS = {
    AUTH: "Check the tenant id, the client id and the client secret the settings name.",
    FORBIDDEN: "Grant the app registration the Microsoft Graph application permission this "
    "needs, with admin consent (docs/connectors.md).",
    NOT_FOUND: "The user is not in the tenant (deleted, or another UPN).",
    THROTTLED: "Graph asked to wait longer than Vouchsafe waits; try again later.",
}
# Why each change Graph cannot undo stays a manual step.
MANUAL_UNDO = {
    ChangeKind.ADDRESS_CHANGED: "The Entra connector does not put back an earlier recovery "
    "address: restore it in the Entra admin center (user > Properties).",
    ChangeKind.OAUTH_CONSENT: "The Entra connector does not revoke an application's consent: "
    "remove it in the Entra admin center (Enterprise applications > Permissions).",
    ChangeKind.MAILBOX_RULE: "Mailbox rules live in Exchange Online, which the Entra connector "
    "does not reach: remove the rule in the Exchange admin center.",
    ChangeKind.DELEGATE_GRANTED: "Mailbox delegates live in Exchange Online, which the Entra "
    "connector does not reach: remove the delegate in the Exchange admin center.",
}


# --- settings ------------------------------------------------------------------------------


def validate_entra_settings(raw: dict[str, Any], errors: validation._Errors) -> dict[str, Any]:
    """The entra settings with defaults filled in; problems go to `errors` by setting name.
    The client secret is only named (`client_secret_env`), never given."""
    data = settings_filled(errors, raw, DEFAULTS, required=REQUIRED)
    tenant_id = data["tenant_id"]
    if tenant_id and not (GUID.match(tenant_id) or DOMAIN.match(tenant_id)):
        errors.add(
            "tenant_id",
            "Give the directory (tenant) id, a GUID, or the tenant's domain such as "
            "contoso.onmicrosoft.com; common and organizations do not name one tenant.",
        )
    if data["client_id"] and not GUID.match(data["client_id"]):
        errors.add("client_id", "Give the application (client) id of the app registration, a GUID.")
    check_credential_reference(errors, data, env=("client_secret_env",))
    for name in ("authority_host", "graph_url"):
        data[name] = check_service_url(errors, name, data[name])
    if data["ca_bundle"] and not data["ca_bundle"].startswith("/"):
        errors.add("ca_bundle", "Give an absolute path to a PEM file of CA certificates.")

    lifetime = data["tap_lifetime_minutes"]
    if (
        isinstance(lifetime, bool)
        or not isinstance(lifetime, int)
        or not MIN_PASS_MINUTES <= lifetime <= MAX_PASS_MINUTES
    ):
        errors.add(
            "tap_lifetime_minutes",
            f"A whole number of minutes from {MIN_PASS_MINUTES} to {MAX_PASS_MINUTES} "
            "(R-31: a pass lives at most 8 hours).",
        )
    data["privileged_roles"] = _role_ids(errors, data["privileged_roles"])
    return data


def _role_ids(errors: validation._Errors, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.add("privileged_roles", "Give a list of role template ids (GUIDs).")
        return []
    ids = list(dict.fromkeys(item.strip().lower() for item in value))
    if not ids:
        errors.add(
            "privileged_roles",
            "Name at least one role: with none, a T2 recovery would suspend nothing (R-19).",
        )
    elif len(ids) > MAX_ROLES:
        errors.add("privileged_roles", f"At most {MAX_ROLES} roles.")
    elif not all(GUID.match(item) for item in ids):
        errors.add("privileged_roles", "Each role is a role template id (a GUID).")
    return ids


def user_key(account: ProtectedAccount) -> str:
    """How Graph finds the account's user: its object id when `idp_subject` holds one, else the
    UPN. An OpenID `sub` from Entra is pairwise per application, not the object id, so a
    subject that is not a GUID is not sent to Graph."""
    subject = account.idp_subject.strip()
    return subject if GUID.match(subject) else account.username


class EntraConnector(VendorConnector[GraphClient]):
    """One tenant's Entra ID, through one app registration with application permissions."""

    kind = KIND
    vendor = "Entra ID"
    # Everything through Graph, except a password Vouchsafe would set (see the module's doc).
    native = frozenset(Capability) - {Capability.PASSWORD_SET, Capability.MAILBOX_DELEGATE}
    no_mailbox_delegation = (
        "Microsoft Graph has no mailbox-permission API (Exchange Online PowerShell's "
        "Add-MailboxPermission and Remove-MailboxPermission do): a person grants and removes "
        "the delegation."
    )
    execute_case_types = EXECUTE_CASE_TYPES
    pass_case_types = PASS_CASE_TYPES
    not_executed = {CaseType.PASSWORD_RESET: RESET_NOT_NATIVE}
    not_set_here = RESET_NOT_NATIVE
    hints = HINTS
    not_undone = MANUAL_UNDO

    def __init__(
        self, *, tenant: Tenant, settings: dict[str, Any], client: GraphClient | None = None
    ) -> None:
        super().__init__(tenant=tenant, settings=settings, client=client)
        self.privileged_roles = frozenset(settings["privileged_roles"])

    # --- the operations that are Entra's own ------------------------------------------------

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Delete the user's Temporary Access Pass, if any (Entra keeps at most one)."""
        key = user_key(account)
        path = f"DELETE /users/{key}/authentication/temporaryAccessPassMethods"

        def work(client: GraphClient) -> ExecutionResult:
            passes = [m for m in client.methods_list(key) if m.kind == TEMPORARY_PASS]
            steps: list[Step] = [
                (f"removed temporary pass {m.id}", partial(client.temporary_pass_delete, key, m.id))
                for m in passes
            ]
            return self._steps(path, steps)

        return self._run(path, work)

    def health(self) -> Health:
        try:
            self._vendor().user_get(NOBODY)
        except VendorError as error:
            if error.kind == NOT_FOUND:
                return Health(
                    ok=True,
                    detail=f"Signed in to tenant {self.settings['tenant_id']} as application "
                    f"{self.settings['client_id']}; Microsoft Graph answers.",
                )
            if error.kind == AUTH:
                return Health(
                    ok=False,
                    detail=f"Entra ID refused the application's sign-in ({error.code}): "
                    f"{error.message}",
                )
            if error.kind == FORBIDDEN:
                return Health(
                    ok=False,
                    detail="The app registration may not read users: grant the Microsoft Graph "
                    "application permission User.Read.All, with admin consent.",
                )
            return Health(ok=False, detail=self._describe(error))
        return Health(ok=True, detail="Microsoft Graph answers.")

    def temporary_pass_issue(
        self, *, account: ProtectedAccount, case_type: str, lifetime_minutes: int
    ) -> tuple[ExecutionResult, TemporaryPass | None]:
        """A one-time Temporary Access Pass, living the shorter of what was asked and the
        tenant's setting (R-31: asking for more than 8 hours is refused). Entra keeps one pass
        per user: a repeat replaces it. Unlike the shared one, addressed by the account's key
        without a read first, with Graph's path (the workflow records it)."""
        key = user_key(account)
        path = f"POST /users/{key}/authentication/temporaryAccessPassMethods"
        if case_type not in self.pass_case_types:
            return capability_missing(KIND, f"temporary_pass_issue {case_type}"), None
        refusal = self._lifetime_refused(path, lifetime_minutes)
        if refusal is not None:
            return refusal, None
        lifetime = min(lifetime_minutes, self.settings["tap_lifetime_minutes"])
        try:
            issued = self._vendor().temporary_pass_create(key, lifetime, usable_once=True)
        except VendorError as error:
            return self._failure(path, error, lifetime_minutes=lifetime), None
        return self._issued(path, issued, lifetime)

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult:
        key = user_key(account)
        path = f"POST /users/{key}/revokeSignInSessions"

        def work(client: GraphClient) -> ExecutionResult:
            if not client.sessions_revoke(key):
                return self._refused(path, "not_revoked", "Graph did not confirm the revocation.")
            return self._ok(path, revoked=True)

        return self._run(path, work)

    def method_remove(self, *, account: ProtectedAccount, method: AuthMethod) -> ExecutionResult:
        """Remove one method, addressed by the account's key (no user read first), with Graph's
        path as the result's (the workflow records it)."""
        key = user_key(account)
        path = f"DELETE /users/{key}/authentication/{method.kind}Methods/{method.id}"
        why = self._removal_refused(method)
        if why is not None:
            return self._not_native(path, why)

        def work(client: GraphClient) -> ExecutionResult:
            client.method_delete(key, method)
            return self._ok(path, method_id=method.id, kind=method.kind)

        return self._run(path, work)

    # --- Entra's part of the shared operations ----------------------------------------------

    def _client_built(self) -> GraphClient:
        return GraphClient(
            tenant_id=self.settings["tenant_id"],
            client_id=self.settings["client_id"],
            client_secret=read_credential(env=self.settings["client_secret_env"]),
            authority_host=self.settings["authority_host"],
            graph_url=self.settings["graph_url"] + GRAPH_VERSION,
            verify=self.settings.get("ca_bundle") or True,
        )

    def _user(self, client: GraphClient, account: ProtectedAccount) -> DirectoryUser:
        return client.user_get(user_key(account))

    def _methods(self, client: GraphClient, user: DirectoryUser) -> list[AuthMethod]:
        return client.methods_list(user.id)

    def _method_delete(self, client: GraphClient, user: DirectoryUser, method: AuthMethod) -> None:
        client.method_delete(user.id, method)

    def _removal_refused(self, method: AuthMethod) -> str | None:
        if method.kind in DELETABLE_KINDS:
            return None
        return f"Graph cannot remove a {method.kind} method: it stays until the owner changes it."

    def _roles_held(self, client: GraphClient, user: DirectoryUser) -> list[RoleAssignment]:
        return client.role_assignments_list(user.id)

    def _suspends(self, assignment: RoleAssignment) -> bool:
        """Only the privileged roles the settings name are suspended (R-19)."""
        return assignment.role_id.lower() in self.privileged_roles

    def _role_unassign(
        self, client: GraphClient, user: DirectoryUser, assignment: RoleAssignment
    ) -> None:
        client.role_assignment_delete(assignment.id)

    def _role_assign(self, client: GraphClient, user: DirectoryUser, role: dict[str, Any]) -> None:
        client.role_assignment_create(user.id, role["role_id"], role["scope"])

    def _enabled_set(self, client: GraphClient, user: DirectoryUser, enabled: bool) -> None:
        client.user_enabled_set(user.id, enabled)

    def _changes(
        self, client: GraphClient, user: DirectoryUser, since: dt.datetime
    ) -> list[ReportedChange]:
        """Graph's audit log names users by object id (the account may know only the UPN)."""
        return client.changes_since(user.id, since)

    def _sessions_end(self, client: GraphClient, user: DirectoryUser) -> Step:
        return "sessions revoked", partial(client.sessions_revoke, user.id)

    def _undoers(self) -> dict[str, Undo]:
        return {
            ChangeKind.MFA_ENROLLED: self._enrolment_undo,
            ChangeKind.PRIVILEGED_ROLE: self._role_undo,
        }

    def _enrolment_undo(
        self, client: GraphClient, user: DirectoryUser, change: ReportedChange
    ) -> ExecutionResult:
        """The audit record does not name the method: the one created closest to the record's
        time (within ENROLMENT_MATCH) is the one it reports, a password being no enrolment.
        None left means already removed."""
        near = [
            (abs(method.created_at - change.at), method)
            for method in self._methods(client, user)
            if method.created_at is not None and method.kind != PASSWORD
        ]
        near = [(apart, method) for apart, method in near if apart <= ENROLMENT_MATCH]
        if not near:
            return self._undone(change, [])
        added = min(near, key=lambda pair: pair[0])[1]
        if self._removal_refused(added) is not None:
            return self._not_native(
                "change_undo",
                f"Graph cannot remove the {added.kind} method {added.id}: remove it in the "
                "Entra admin center.",
            )
        return self._undone(change, [self._method_removal(client, user, added)])

    def _role_undo(
        self, client: GraphClient, user: DirectoryUser, change: ReportedChange
    ) -> ExecutionResult:
        """Remove the user's assignments of the role the audit record names."""
        role_id = str(change.target.get("role_id", "")).lower()
        if not role_id:
            raise target_unknown("The audit record names no role.")
        granted = [a for a in self._roles_held(client, user) if a.role_id.lower() == role_id]
        return self._undone(change, [self._role_removal(client, user, a) for a in granted])
