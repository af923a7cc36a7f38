"""The tenant's OpenID Connect provider for its account owners, under dual control (R-27).

A tenant_admin drafts a configuration (`idp_config_draft`): issuer, client id, the name of the
environment variable holding the client secret (the secret itself is never stored), and the
`amr` / `acr` values that show an authenticator already bound to the account (S5). A second
tenant_admin, neither the drafter's account nor the same person, approves it with a fresh
step-up (`idp_config_approve`); the provider's discovery document must answer for its issuer
and the secret must be set. The approved configuration replaces the active one in the same
transaction. Any tenant_admin may retire one (`idp_config_retire`): that only takes a way in
away. Adding an IdP is how attackers give themselves a way in (THREATS.md: "adds a federated
IdP"), hence the second person.

Each service owns its transaction and records its event in it; a refusal rolls the action back
and is then recorded on its own as `idp.config_refused`, so refused attempts stay visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.access import TenantAccess, access_in
from tenants.choices import Role
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import ALLOW, Decision, can_administer_tenant, enforce
from tenants.principals import ai_blocked
from tenants.stepup import StepUpProof, require_fresh_step_up

from ..connectors.validation import ENV_NAME
from .choices import IdpConfigStatus
from .models import OwnerIdpConfig
from .oidc import IdpUnavailable, client_secret, discovery, url_problem

MAX_ISSUER = 500
MAX_CLIENT_ID = 255
MAX_VALUES = 20
AMR_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_ACR = 255
# RFC 8176 values that never show an authenticator bound to the account: something known.
NOT_BOUND_AMR = frozenset({"pwd", "kba"})
OPEN_STATUSES = (IdpConfigStatus.DRAFT, IdpConfigStatus.PENDING)
CONFIG_READERS = frozenset({Role.TENANT_ADMIN, Role.SECURITY_OFFICER, Role.AUDITOR})


# --- reads and decisions ------------------------------------------------------------------------


def idp_config_active(tenant: Tenant) -> OwnerIdpConfig | None:
    """The tenant's active configuration, or None (owners are told IdP sign-in is not set up)."""
    return (
        OwnerIdpConfig.objects.for_tenant(tenant)
        .filter(status=IdpConfigStatus.ACTIVE)
        .select_related("drafted_by", "approved_by")
        .first()
    )


def idp_config_list(tenant: Tenant) -> QuerySet[OwnerIdpConfig]:
    return (
        OwnerIdpConfig.objects.for_tenant(tenant)
        .select_related("drafted_by", "approved_by")
        .order_by("-created_at", "-pk")
    )


def can_read_idp_config(access: TenantAccess | None) -> Decision:
    """The configuration is for the tenant's admins, security officers and auditors."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if not access.roles & CONFIG_READERS:
        return Decision(
            False,
            "idp.read_forbidden",
            "The identity provider settings are for the tenant's admins, security officers "
            "and auditors.",
        )
    return ALLOW


def can_approve_idp_config(*, approver: User, config: OwnerIdpConfig) -> Decision:
    """Dual control (R-27): a draft is approved by a second person, never its drafter (by
    account or by `person_id`, R-21)."""
    if config.status not in OPEN_STATUSES:
        return Decision(
            False,
            "idp.not_pending",
            f"Only a configuration waiting for approval can be approved; this one is "
            f"{config.status}.",
        )
    if approver.pk == config.drafted_by_id:
        return Decision(
            False, "sod.approver_is_author", "Whoever drafted a configuration cannot approve it."
        )
    if str(approver.person_id) == str(config.drafted_by.person_id):
        return Decision(
            False,
            "sod.same_person",
            "The same person under another account cannot approve their own configuration.",
        )
    return ALLOW


# --- validation ---------------------------------------------------------------------------------


def _values(raw: Any, name: str, problems: dict[str, list[str]], *, limit: int) -> list[str]:
    if isinstance(raw, str):
        raw = [v for v in re.split(r"[\s,]+", raw) if v]
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        problems[name] = ["Give a list of values."]
        return []
    values = list(dict.fromkeys(v.strip() for v in raw if v.strip()))
    if len(values) > MAX_VALUES:
        problems[name] = [f"At most {MAX_VALUES} values."]
    if any(len(v) > limit or "\x00" in v for v in values):
        problems[name] = [f"Each value has at most {limit} characters."]
    return values


def idp_config_problems(
    *,
    issuer: Any,
    client_id: Any,
    client_secret_env: Any,
    allowed_amr: Any,
    allowed_acr: Any,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The cleaned fields and every problem found, by field (nothing is stored here)."""
    problems: dict[str, list[str]] = {}
    issuer = issuer.strip() if isinstance(issuer, str) else ""
    if not issuer or len(issuer) > MAX_ISSUER:
        problems["issuer"] = [f"Give the issuer URL (at most {MAX_ISSUER} characters)."]
    elif "?" in issuer or "#" in issuer:
        problems["issuer"] = ["An issuer has no query or fragment."]
    elif problem := url_problem(issuer):
        problems["issuer"] = [problem]
    client_id = client_id.strip() if isinstance(client_id, str) else ""
    if not client_id or len(client_id) > MAX_CLIENT_ID or not client_id.isprintable():
        problems["client_id"] = [f"Give the client id (1 to {MAX_CLIENT_ID} characters)."]
    secret_env = client_secret_env.strip() if isinstance(client_secret_env, str) else ""
    if not ENV_NAME.match(secret_env):
        problems["client_secret_env"] = [
            "Name the environment variable that holds the client secret (A-Z, 0-9, _); "
            "the secret itself is never stored."
        ]
    amr = _values(allowed_amr, "allowed_amr", problems, limit=64)
    if "allowed_amr" not in problems:
        if not amr:
            problems["allowed_amr"] = [
                "List at least one amr value that shows an authenticator already bound to the "
                "account (for example hwk, swk, mfa)."
            ]
        elif bad := [v for v in amr if not AMR_VALUE.match(v)]:
            problems["allowed_amr"] = [f"Not an amr value: {', '.join(bad)[:200]}."]
        elif known := sorted(set(amr) & NOT_BOUND_AMR):
            problems["allowed_amr"] = [
                f"{', '.join(known)} shows something known, never an authenticator bound to "
                "the account: it cannot count as S5."
            ]
    acr = _values(allowed_acr or [], "allowed_acr", problems, limit=MAX_ACR)
    cleaned = {
        "issuer": issuer,
        "client_id": client_id,
        "client_secret_env": secret_env,
        "allowed_amr": amr,
        "allowed_acr": acr,
    }
    return cleaned, problems


# --- writes -------------------------------------------------------------------------------------


def _require_tenant_admin(actor: User, tenant: Tenant) -> None:
    enforce(ai_blocked(actor, "change the identity provider settings"))
    enforce(can_administer_tenant(access_in(actor, tenant)))


@contextmanager
def _refusals_recorded(
    actor: User, tenant: Tenant, step: str, config: OwnerIdpConfig | None = None
) -> Iterator[None]:
    """Record any refusal raised inside as `idp.config_refused` (after its rollback), re-raise."""
    try:
        yield
    except DomainError as refusal:
        with transaction.atomic():
            record(
                action="idp.config_refused",
                actor=Actor.in_tenant(actor, tenant),
                tenant=tenant,
                target=config,
                data={
                    "step": step,
                    "code": refusal.code,
                    "reason": refusal.message,
                    "config": config.pk if config else None,
                    "fields": sorted(refusal.field_errors),
                },
            )
        raise


def _locked(config: OwnerIdpConfig) -> OwnerIdpConfig:
    return (
        OwnerIdpConfig.objects.for_tenant(config.tenant)
        .select_for_update(of=("self",))
        .select_related("drafted_by")
        .get(pk=config.pk)
    )


def idp_config_draft(
    *,
    actor: User,
    tenant: Tenant,
    issuer: str,
    client_id: str,
    client_secret_env: str,
    allowed_amr: Iterable[str] | str,
    allowed_acr: Iterable[str] | str = (),
) -> OwnerIdpConfig:
    """Store a configuration waiting for a second tenant_admin (tenant_admins only).

    Refused with `idp.config_invalid` and every problem by field when the issuer is not an
    https URL on a public address (development and tests allow a loopback provider over http),
    the client id is empty, the secret's variable name is not one, or no `amr` value showing a
    bound authenticator is given (`pwd` and `kba` never are).
    """
    with _refusals_recorded(actor, tenant, "draft"), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        cleaned, problems = idp_config_problems(
            issuer=issuer,
            client_id=client_id,
            client_secret_env=client_secret_env,
            allowed_amr=list(allowed_amr) if not isinstance(allowed_amr, str) else allowed_amr,
            allowed_acr=list(allowed_acr) if not isinstance(allowed_acr, str) else allowed_acr,
        )
        if problems:
            raise InvalidInput(
                "The identity provider settings are not valid.",
                code="idp.config_invalid",
                field_errors=problems,
            )
        config = OwnerIdpConfig.objects.create(
            tenant=tenant, status=IdpConfigStatus.PENDING, drafted_by=actor, **cleaned
        )
        record(
            action="idp.config_drafted",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=config,
            data={"config": config.pk, **cleaned},
        )
    return config


def idp_config_approve(
    *, actor: User, config: OwnerIdpConfig, step_up: StepUpProof | None
) -> OwnerIdpConfig:
    """A second tenant_admin activates a waiting configuration, proving a fresh step-up.

    Refused when the approver drafted it or is the same person (`sod.approver_is_author`,
    `sod.same_person`), without a fresh step-up (`stepup.*`), when the settings no longer pass
    validation, the client secret's variable is not set here (`idp.secret_missing`), or the
    provider's discovery document does not answer for its issuer (`idp.discovery_failed`).
    The tenant's active configuration, if any, is retired in the same transaction.
    """
    tenant = config.tenant
    with _refusals_recorded(actor, tenant, "approve", config), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one activation at a time
        locked = _locked(config)
        enforce(can_approve_idp_config(approver=actor, config=locked))
        proof = require_fresh_step_up(step_up, actor)
        _cleaned, problems = idp_config_problems(
            issuer=locked.issuer,
            client_id=locked.client_id,
            client_secret_env=locked.client_secret_env,
            allowed_amr=locked.allowed_amr,
            allowed_acr=locked.allowed_acr,
        )
        if problems:
            raise InvalidInput(
                "The identity provider settings are no longer valid; draft them again.",
                code="idp.config_invalid",
                field_errors=problems,
            )
        if not client_secret(locked.client_secret_env):
            raise PolicyDenied(
                f"The environment variable {locked.client_secret_env} is not set on this "
                "deployment: the client secret must be in place before the provider is used.",
                code="idp.secret_missing",
            )
        try:
            discovery(locked.issuer, refresh=True)
        except IdpUnavailable as down:
            raise DomainError(
                "The provider's discovery document did not answer for this issuer "
                f"({down.code}); nothing was activated.",
                code="idp.discovery_failed",
            ) from None
        now = timezone.now()
        replaced = (
            OwnerIdpConfig.objects.for_tenant(tenant)
            .select_for_update()
            .filter(status=IdpConfigStatus.ACTIVE)
            .first()
        )
        who = Actor.in_tenant(actor, tenant)
        if replaced is not None:
            replaced.status, replaced.retired_at = IdpConfigStatus.RETIRED, now
            replaced.save(update_fields=["status", "retired_at"])
            record(
                action="idp.config_retired",
                actor=who,
                tenant=tenant,
                target=replaced,
                data={"config": replaced.pk, "issuer": replaced.issuer, "replaced_by": locked.pk},
            )
        locked.status = IdpConfigStatus.ACTIVE
        locked.approved_by = actor
        locked.activated_at = now
        locked.save(update_fields=["status", "approved_by", "activated_at"])
        record(
            action="idp.config_activated",
            actor=who,
            tenant=tenant,
            target=locked,
            data={
                "config": locked.pk,
                "issuer": locked.issuer,
                "client_id": locked.client_id,
                "allowed_amr": locked.allowed_amr,
                "allowed_acr": locked.allowed_acr,
                "drafted_by": locked.drafted_by.get_username(),
                "replaced": replaced.pk if replaced else None,
                "step_up": proof.audit_data(),
            },
        )
    return locked


def idp_config_retire(*, actor: User, config: OwnerIdpConfig, reason: str = "") -> OwnerIdpConfig:
    """Retire a configuration (waiting or active); owners can then no longer sign in with it,
    and a sign-in under way with it is refused at its return."""
    tenant = config.tenant
    with _refusals_recorded(actor, tenant, "retire", config), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        locked = _locked(config)
        if locked.status == IdpConfigStatus.RETIRED:
            raise InvalidInput("This configuration is already retired.", code="idp.retired")
        previous = locked.status
        locked.status, locked.retired_at = IdpConfigStatus.RETIRED, timezone.now()
        locked.save(update_fields=["status", "retired_at"])
        record(
            action="idp.config_retired",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={
                "config": locked.pk,
                "issuer": locked.issuer,
                "was": previous,
                "reason": reason.strip()[:500],
            },
        )
    return locked
