"""The Microsoft Entra ID connector: a recovery carried out in the tenant through Microsoft Graph.

Per case type, `execute` puts the account in the recovery state and never creates a credential:

- `unlock`: the account may sign in again (`accountEnabled`). Graph can only enable a disabled
  account; Entra's smart lockout ends by itself and has no unlock call.
- `password_reset`, `mfa_reset`, `temporary_access`: nothing changes. The connector checks that
  the user exists and may sign in, and the snapshot records the methods, roles and enabled
  state. The credential is a one-time Temporary Access Pass that the workflow asks for later,
  inside the owner's artifact session only (`temporary_pass_issue`, R-10, R-12). With it the
  owner binds a new authenticator, and the workflow then removes the lost ones
  (`method_remove`) and ends sessions (`sessions_revoke`, R-34).

Vouchsafe never sets an Entra password (PASSWORD_SET is not among its capabilities): the
owner finishes a password reset with the pass, at Microsoft's sign-in, so no password passes
through anyone.

Every operation is safe to repeat: deletes of something gone count as done, a role granted back
that is already held is left alone, and `revert` converges on its snapshot, so a worker that
died mid-sequence runs it again. A failed step is reported with the ones done; the others still
run (sessions are revoked even when a method could not be removed). Results carry ids, kinds,
times and Graph's own error code and message, never a secret: the client secret is read from
the environment variable the settings name, and a pass value exists only in the
`TemporaryPass` handed to the owner's session.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any
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
from .graph_client import AUTHORITY_HOST, DELETABLE_KINDS, MAX_PASS_MINUTES, GraphClient
from .vendor_http import AUTH, FORBIDDEN, NOT_FOUND, THROTTLED, VendorError

logger = logging.getLogger(__name__)

KIND = "entra"
GRAPH_ROOT = "https://graph.microsoft.com"
GRAPH_VERSION = "/v1.0"
TEMPORARY_PASS = "temporaryAccessPass"  # noqa: S105 - Graph's name of the method kind
PASSWORD = "password"  # noqa: S105 - Graph's name of the method kind
MIN_PASS_MINUTES = 10
PASS_CASE_TYPES = frozenset(
    {CaseType.PASSWORD_RESET, CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS}
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
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

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

REQUIRED = ("tenant_id", "client_id", "client_secret_env")
DEFAULTS: dict[str, Any] = {
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

Step = tuple[str, Callable[[], object]]


# --- settings ------------------------------------------------------------------------------


def validate_entra_settings(raw: dict[str, Any], errors: validation._Errors) -> dict[str, Any]:
    """The entra settings with defaults filled in; problems go to `errors` by setting name.
    The client secret is only named (`client_secret_env`), never given."""
    for name in sorted(set(raw) - {*REQUIRED, *DEFAULTS}):
        errors.add(name, "Unknown setting.")
    data: dict[str, Any] = {}
    for name in REQUIRED:
        text = validation._text(raw.get(name, ""))
        if text is None:
            errors.add(name, "Give text of at most 500 characters, without control characters.")
        elif not text:
            errors.add(name, "This setting is required.")
        data[name] = text or ""

    tenant_id = data["tenant_id"]
    if tenant_id and not (GUID.match(tenant_id) or DOMAIN.match(tenant_id)):
        errors.add(
            "tenant_id",
            "Give the directory (tenant) id, a GUID, or the tenant's domain such as "
            "contoso.onmicrosoft.com; common and organizations do not name one tenant.",
        )
    if data["client_id"] and not GUID.match(data["client_id"]):
        errors.add("client_id", "Give the application (client) id of the app registration, a GUID.")
    if data["client_secret_env"] and not validation.ENV_NAME.match(data["client_secret_env"]):
        errors.add(
            "client_secret_env",
            "Name the environment variable that holds the client secret (A-Z, 0-9, _); "
            "never the secret itself.",
        )
    for name in ("authority_host", "graph_url"):
        data[name] = _service_url(errors, name, raw.get(name, DEFAULTS[name]))

    ca_bundle = validation._text(raw.get("ca_bundle", ""))
    if ca_bundle is None or (ca_bundle and not ca_bundle.startswith("/")):
        errors.add("ca_bundle", "Give an absolute path to a PEM file of CA certificates.")
    data["ca_bundle"] = ca_bundle or ""

    lifetime = raw.get("tap_lifetime_minutes", DEFAULTS["tap_lifetime_minutes"])
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
    data["tap_lifetime_minutes"] = lifetime
    data["privileged_roles"] = _role_ids(
        errors, raw.get("privileged_roles", DEFAULTS["privileged_roles"])
    )
    return data


def _service_url(errors: validation._Errors, name: str, value: Any) -> str:
    """`value` as `https://host[:port]`; plain http only on this machine (a development fake)."""
    text = validation._text(value, validation.MAX_URL_LENGTH)
    problem = "Give https://host[:port] without a path (http only for 127.0.0.1 or localhost)."
    if not text:
        errors.add(name, problem)
        return ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        errors.add(name, "The URL cannot be parsed.")
        return ""
    local = parts.hostname in LOCAL_HOSTS
    if (
        not parts.hostname
        or parts.scheme not in ("https", "http")
        or (parts.scheme == "http" and not local)
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        errors.add(name, problem)
        return ""
    return text.rstrip("/")


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


# --- helpers -------------------------------------------------------------------------------


def user_key(account: ProtectedAccount) -> str:
    """How Graph finds the account's user: its object id when `idp_subject` holds one, else the
    UPN. An OpenID `sub` from Entra is pairwise per application, not the object id, so a
    subject that is not a GUID is not sent to Graph."""
    subject = account.idp_subject.strip()
    return subject if GUID.match(subject) else account.username


def _method_state(method: AuthMethod) -> dict[str, Any]:
    created = method.created_at.isoformat() if method.created_at else None
    return {"id": method.id, "kind": method.kind, "created_at": created}


def _role_state(assignment: RoleAssignment) -> dict[str, str]:
    return {
        "id": assignment.id,
        "role_id": assignment.role_id,
        "role_name": assignment.role_name,
        "scope": assignment.scope,
    }


def _role_label(role: dict[str, str]) -> str:
    return f"{role['role_name'] or role['role_id']} at {role['scope']}"


def _planned(label: str, plan: Callable[[], list[Step]]) -> list[Step]:
    """The steps `plan` makes; when reading what it needs fails, one step `label` that fails
    with that error, so that the steps not needing it still run."""
    try:
        return plan()
    except VendorError as error:
        failure = error

    def fail() -> None:
        raise failure

    return [(label, fail)]


def _describe(error: VendorError) -> str:
    """Graph's refusal in words: its code and message, and what to do about it."""
    hint = HINTS.get(error.kind)
    return f"Microsoft Graph: {str(error).rstrip('.')}." + (f" {hint}" if hint else "")


class EntraConnector:
    """One tenant's Entra ID, through one app registration with application permissions."""

    kind = KIND
    # Everything through Graph, except a password Vouchsafe would set (see the module's doc).
    capabilities = frozenset(Capability) - {Capability.PASSWORD_SET}

    def __init__(
        self, *, tenant: Tenant, settings: dict[str, Any], client: GraphClient | None = None
    ) -> None:
        self.tenant = tenant
        self.settings = settings
        self.privileged_roles = frozenset(settings["privileged_roles"])
        self._client = client

    # --- plumbing ----------------------------------------------------------------------------

    def _graph(self) -> GraphClient:
        """The Graph client; built on first use from the settings and the secret's variable,
        so a connector whose secret is missing fails in its result, not when it is built."""
        if self._client is None:
            variable = self.settings["client_secret_env"]
            secret = os.environ.get(variable, "")
            if not secret:
                message = f"The client secret is not set: environment variable {variable} is empty."
                raise VendorError(AUTH, None, "secret_missing", message)
            self._client = GraphClient(
                tenant_id=self.settings["tenant_id"],
                client_id=self.settings["client_id"],
                client_secret=secret,
                authority_host=self.settings["authority_host"],
                graph_url=self.settings["graph_url"] + GRAPH_VERSION,
                verify=self.settings.get("ca_bundle") or True,
            )
        return self._client

    def _failure(self, path: str, error: VendorError, **detail: Any) -> ExecutionResult:
        code = f"entra.{error.kind}"
        logger.warning("entra connector: %s failed: %s", path, error)
        return ExecutionResult(
            ok=False,
            connector=KIND,
            path=path,
            detail={"code": code, "vendor_code": error.code, "status": error.status, **detail},
            error=_describe(error),
        )

    def _refusal(
        self, path: str, code: str, error: str, snapshot: Snapshot | None = None
    ) -> ExecutionResult:
        logger.warning("entra connector: %s refused: %s", path, error)
        return ExecutionResult(
            ok=False,
            connector=KIND,
            path=path,
            snapshot=snapshot,
            detail={"code": f"entra.{code}"},
            error=error,
        )

    def _run(self, path: str, work: Callable[[GraphClient], ExecutionResult]) -> ExecutionResult:
        try:
            return work(self._graph())
        except VendorError as error:
            return self._failure(path, error)

    def _steps(
        self,
        path: str,
        steps: list[Step],
        *,
        snapshot: Snapshot | None = None,
        **detail: Any,
    ) -> ExecutionResult:
        """Run every step, each on its own: one that fails does not stop the others, and the
        result names what was done and what was not (running it all again is safe)."""
        done: list[str] = []
        failed: list[dict[str, str]] = []
        for label, step in steps:
            try:
                step()
            except VendorError as error:
                logger.warning("entra connector: %s: %s failed: %s", path, label, error)
                failed.append(
                    {"step": label, "code": f"entra.{error.kind}", "error": _describe(error)}
                )
            else:
                done.append(label)
        summary = {"done": done, "failed": failed, **detail}
        if not failed:
            return ExecutionResult(
                ok=True, connector=KIND, path=path, snapshot=snapshot, detail=summary
            )
        return ExecutionResult(
            ok=False,
            connector=KIND,
            path=path,
            snapshot=snapshot,
            detail={"code": failed[0]["code"], **summary},
            error=f"{len(failed)} of {len(steps)} steps failed, {len(done)} done; "
            f"first failure: {failed[0]['step']}: {failed[0]['error']}",
        )

    def _read(
        self, client: GraphClient, account: ProtectedAccount, **extra: Any
    ) -> tuple[DirectoryUser, Snapshot]:
        """The user and what a revert needs: enabled state, methods, role assignments. A tenant
        that did not grant the role permission gets `roles: None` (role steps stay manual)."""
        user = client.user_get(user_key(account))
        methods = client.methods_list(user.id)
        try:
            roles: list[dict[str, str]] | None = [
                _role_state(held) for held in client.role_assignments_list(user.id)
            ]
        except VendorError as error:
            if error.kind != FORBIDDEN:
                raise
            roles = None
        state = {
            "connector": KIND,
            "user_id": user.id,
            "username": user.username,
            "enabled": user.enabled,
            "methods": [_method_state(method) for method in methods],
            "roles": roles,
            **extra,
        }
        return user, Snapshot(account_external_id=account.external_id, state=state)

    def _same_user(
        self, client: GraphClient, account: ProtectedAccount, user_id: str | None, path: str
    ) -> tuple[DirectoryUser, ExecutionResult | None]:
        """The account's user now, and a refusal when it is not `user_id` (the snapshot's or
        the change's): a user deleted and re-created under the same UPN gets nothing back."""
        user = client.user_get(user_key(account))
        if user_id is not None and user.id != user_id:
            return user, self._refusal(
                path,
                "user_changed",
                f"{account.username} is now the Entra user {user.id}, not {user_id} as "
                "recorded; nothing was changed.",
            )
        return user, None

    @staticmethod
    def _ours(snapshot: Snapshot) -> bool:
        return snapshot.state.get("connector") == KIND and "user_id" in snapshot.state

    # --- the connector interface -------------------------------------------------------------

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        if case_type not in EXECUTE_CASE_TYPES:
            return None
        try:
            return self._read(self._graph(), account, case_type=case_type)[1]
        except VendorError as error:
            logger.warning("entra connector: snapshot of %s failed: %s", account.username, error)
            return None

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        if case_type not in EXECUTE_CASE_TYPES:
            return capability_missing(KIND, f"execute {case_type}")
        path = f"/users/{user_key(account)}"

        def work(client: GraphClient) -> ExecutionResult:
            user, taken = self._read(client, account, case_type=case_type, case_id=case_id)
            if case_type == CaseType.UNLOCK:
                if not user.enabled:
                    client.user_enabled_set(user.id, True)
                return ExecutionResult(
                    ok=True,
                    connector=KIND,
                    path=f"PATCH {path}",
                    snapshot=taken,
                    detail={"changed": not user.enabled},
                )
            if not user.enabled:
                return self._refusal(
                    f"GET {path}",
                    "user_disabled",
                    f"{user.username} is disabled in Entra ID, so a temporary pass would not "
                    "let the owner sign in: unlock the account first.",
                    taken,
                )
            return ExecutionResult(
                ok=True,
                connector=KIND,
                path=f"GET {path}",
                snapshot=taken,
                detail={"changed": False, "next": "temporary_pass"},
            )

        return self._run(f"execute {path}", work)

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Converge on the snapshot: remove the methods added since, grant back the roles it
        held, put back the enabled state, then end sessions. Methods removed since cannot be
        re-created (a key or an app is the owner's to bind): the result names them."""
        path = f"revert /users/{user_key(account)}"
        if not self._ours(snapshot):
            return self._refusal(
                path, "snapshot_foreign", "This snapshot was not taken by the entra connector."
            )
        state = snapshot.state

        def work(client: GraphClient) -> ExecutionResult:
            user, refused = self._same_user(client, account, state["user_id"], path)
            if refused:
                return refused
            methods: dict[str, list[dict[str, Any]]] = {}
            steps = _planned(
                "read the authentication methods",
                partial(self._removals, client, user.id, state["methods"], methods),
            )
            if state["roles"] is not None:
                steps += _planned(
                    "read the role assignments",
                    partial(self._grants, client, user.id, state["roles"]),
                )
            if user.enabled != state["enabled"]:
                label = "account enabled" if state["enabled"] else "account disabled"
                steps.append((label, partial(client.user_enabled_set, user.id, state["enabled"])))
            steps.append(("sessions revoked", partial(client.sessions_revoke, user.id)))
            return self._steps(path, steps, **methods, roles_unknown=state["roles"] is None)

        return self._run(path, work)

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

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        return replace(
            capability_missing(KIND, "password_set"),
            error="Vouchsafe never sets an Entra ID password: the owner signs in with the "
            "temporary pass shown in their recovery session and chooses their own.",
        )

    def health(self) -> Health:
        try:
            self._graph().user_get(NOBODY)
        except VendorError as error:
            if error.kind == NOT_FOUND:
                return Health(
                    ok=True,
                    detail=f"Signed in to tenant {self.settings['tenant_id']} as application "
                    f"{self.settings['client_id']}; Microsoft Graph answers.",
                )
            if error.code == "secret_missing":
                return Health(ok=False, detail=error.message)
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
            return Health(ok=False, detail=_describe(error))
        return Health(ok=True, detail="Microsoft Graph answers.")

    # --- the cloud operations ----------------------------------------------------------------

    def temporary_pass_issue(
        self, *, account: ProtectedAccount, case_type: str, lifetime_minutes: int
    ) -> tuple[ExecutionResult, TemporaryPass | None]:
        """A one-time Temporary Access Pass, living the shortest of what was asked, the tenant's
        setting and 8 hours (R-31). Entra keeps one pass per user: a repeat replaces it."""
        key = user_key(account)
        path = f"POST /users/{key}/authentication/temporaryAccessPassMethods"
        if case_type not in PASS_CASE_TYPES:
            return capability_missing(KIND, f"temporary_pass_issue {case_type}"), None
        lifetime = min(lifetime_minutes, self.settings["tap_lifetime_minutes"], MAX_PASS_MINUTES)
        try:
            issued = self._graph().temporary_pass_create(key, lifetime, usable_once=True)
        except VendorError as error:
            return self._failure(path, error, lifetime_minutes=lifetime), None
        except ValueError as error:  # a lifetime below one minute: the client's own refusal
            return self._refusal(path, "lifetime_invalid", str(error)), None
        logger.info(
            "entra connector: temporary pass %s issued for %s (%d minutes)",
            issued.id,
            key,
            lifetime,
        )
        expires = issued.expires_at.isoformat() if issued.expires_at else None
        result = ExecutionResult(
            ok=True,
            connector=KIND,
            path=path,
            detail={
                "pass_id": issued.id,
                "lifetime_minutes": lifetime,
                "expires_at": expires,
                "usable_once": issued.usable_once,
            },
        )
        return result, issued

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult:
        key = user_key(account)
        path = f"POST /users/{key}/revokeSignInSessions"

        def work(client: GraphClient) -> ExecutionResult:
            if not client.sessions_revoke(key):
                return self._refusal(path, "not_revoked", "Graph did not confirm the revocation.")
            return ExecutionResult(ok=True, connector=KIND, path=path, detail={"revoked": True})

        return self._run(path, work)

    def methods_list(self, *, account: ProtectedAccount) -> list[AuthMethod]:
        """The user's methods; `VendorError` when Graph cannot answer."""
        return self._graph().methods_list(user_key(account))

    def method_remove(self, *, account: ProtectedAccount, method: AuthMethod) -> ExecutionResult:
        key = user_key(account)
        path = f"DELETE /users/{key}/authentication/{method.kind}Methods/{method.id}"
        if method.kind not in DELETABLE_KINDS:
            return replace(
                capability_missing(KIND, path),
                error=f"Graph cannot remove a {method.kind} method: it stays until the owner "
                "changes it.",
            )

        def work(client: GraphClient) -> ExecutionResult:
            client.method_delete(key, method)
            detail = {"method_id": method.id, "kind": method.kind}
            return ExecutionResult(ok=True, connector=KIND, path=path, detail=detail)

        return self._run(path, work)

    def roles_suspend(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Remove the user's assignments of the privileged roles (R-19). The snapshot lists
        every one found, removed or not, for `roles_restore`. A caller that needs to survive a
        crash between the removal and storing the result keeps `snapshot()` first: it lists
        all the user's roles, and `roles_restore` accepts it too."""
        path = "DELETE /roleManagement/directory/roleAssignments"

        def work(client: GraphClient) -> ExecutionResult:
            user = client.user_get(user_key(account))
            held = [
                _role_state(assignment)
                for assignment in client.role_assignments_list(user.id)
                if assignment.role_id.lower() in self.privileged_roles
            ]
            taken = Snapshot(
                account_external_id=account.external_id,
                state={
                    "connector": KIND,
                    "user_id": user.id,
                    "username": user.username,
                    "roles": held,
                },
            )
            steps: list[Step] = [
                (f"removed {_role_label(role)}", partial(client.role_assignment_delete, role["id"]))
                for role in held
            ]
            return self._steps(path, steps, snapshot=taken)

        return self._run(path, work)

    def roles_restore(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Grant back the snapshot's roles the user no longer holds, to the same user only."""
        path = "POST /roleManagement/directory/roleAssignments"
        if not self._ours(snapshot) or snapshot.state.get("roles") is None:
            return self._refusal(
                path,
                "snapshot_foreign",
                "This snapshot holds no Entra role assignments to restore.",
            )
        state = snapshot.state

        def work(client: GraphClient) -> ExecutionResult:
            user, refused = self._same_user(client, account, state["user_id"], path)
            if refused:
                return refused
            return self._steps(path, self._grants(client, user.id, state["roles"]))

        return self._run(path, work)

    def _removals(
        self,
        client: GraphClient,
        user_id: str,
        recorded: list[dict[str, Any]],
        report: dict[str, list[dict[str, Any]]],
    ) -> list[Step]:
        """Steps removing the methods that are not in `recorded`; `report` gets those Graph
        cannot remove and the recorded ones gone since (which no one can re-create)."""
        known = {method["id"] for method in recorded}
        current = client.methods_list(user_id)
        added = [method for method in current if method.id not in known]
        present = {method.id for method in current}
        report["not_removable"] = [_method_state(m) for m in added if m.kind not in DELETABLE_KINDS]
        report["not_restorable"] = [m for m in recorded if m["id"] not in present]
        return [
            (f"removed {m.kind} method {m.id}", partial(client.method_delete, user_id, m))
            for m in added
            if m.kind in DELETABLE_KINDS
        ]

    def _grants(self, client: GraphClient, user_id: str, roles: list[dict[str, str]]) -> list[Step]:
        """Steps granting back the `roles` the user does not hold now."""
        held = {(a.role_id, a.scope) for a in client.role_assignments_list(user_id)}
        return [
            (
                f"restored {_role_label(role)}",
                partial(client.role_assignment_create, user_id, role["role_id"], role["scope"]),
            )
            for role in roles
            if (role["role_id"], role["scope"]) not in held
        ]

    def changes_since(
        self, *, account: ProtectedAccount, since: dt.datetime
    ) -> list[ReportedChange]:
        """R-35's changes Graph's audit log reports on the user since `since`; `VendorError`
        when Graph cannot answer. The log names users by object id, so the UPN is resolved."""
        client = self._graph()
        return client.changes_since(client.user_get(user_key(account)).id, since)

    def change_undo(self, *, account: ProtectedAccount, change: ReportedChange) -> ExecutionResult:
        """Delete the authenticator a reported registration added, or the role assignment a
        reported grant made. What Graph cannot undo is `capability_missing`, with the manual
        step in words."""
        if change.kind in MANUAL_UNDO:
            return replace(
                capability_missing(KIND, f"change_undo {change.kind}"),
                error=MANUAL_UNDO[change.kind],
            )
        path = f"change_undo {change.kind} /users/{user_key(account)}"

        def work(client: GraphClient) -> ExecutionResult:
            user, refused = self._same_user(client, account, change.target.get("user_id"), path)
            if refused:
                return refused
            if change.kind == ChangeKind.MFA_ENROLLED:
                return self._enrolment_undo(client, user, change, path)
            role_id = str(change.target.get("role_id", "")).lower()
            if not role_id:
                return self._refusal(path, "change_unnamed", "The audit record names no role.")
            steps: list[Step] = [
                (
                    f"removed {_role_label(_role_state(a))}",
                    partial(client.role_assignment_delete, a.id),
                )
                for a in client.role_assignments_list(user.id)
                if a.role_id.lower() == role_id
            ]
            return self._steps(path, steps, change_id=change.id)

        return self._run(path, work)

    def _enrolment_undo(
        self, client: GraphClient, user: DirectoryUser, change: ReportedChange, path: str
    ) -> ExecutionResult:
        """The audit record does not name the method: the one created closest to the record's
        time (within ENROLMENT_MATCH) is the one it reports, a password being no enrolment.
        None left means already removed."""
        near = [
            (abs(method.created_at - change.at), method)
            for method in client.methods_list(user.id)
            if method.created_at is not None and method.kind != PASSWORD
        ]
        near = [(apart, method) for apart, method in near if apart <= ENROLMENT_MATCH]
        if not near:
            return self._steps(path, [], change_id=change.id)
        added = min(near, key=lambda pair: pair[0])[1]
        if added.kind not in DELETABLE_KINDS:
            return replace(
                capability_missing(KIND, path),
                error=f"Graph cannot remove the {added.kind} method {added.id}: remove it in "
                "the Entra admin center.",
            )
        label = f"removed {added.kind} method {added.id}"
        return self._steps(
            path, [(label, partial(client.method_delete, user.id, added))], change_id=change.id
        )
