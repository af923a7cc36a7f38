"""Every change to tenants, providers, memberships and grants, each with its audit event."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record

from .access import TenantAccess, access_in, access_memo_clear
from .choices import CaseType, GrantStatus, Role, Tier
from .exceptions import InvalidInput, PolicyDenied
from .models import DelegationGrant, Membership, ServiceProvider, Tenant, User
from .policies import can_administer_tenant, enforce
from .stepup import StepUpProof, require_fresh_step_up

MAX_GRANT_DURATION = timedelta(days=366)


def _require_platform_operator(actor: User) -> None:
    if not (actor.is_active and actor.is_superuser):
        raise PolicyDenied(
            "Only a platform operator may do this.", code="platform.operator_required"
        )


def _tenant_admin_access(actor: User, tenant: Tenant) -> TenantAccess:
    access = access_in(actor, tenant)
    enforce(can_administer_tenant(access))
    assert access is not None  # guaranteed by the policy above
    return access


def _actor(user: User, tenant: Tenant | None = None) -> Actor:
    return Actor.for_user(user, organisation=tenant.name if tenant else "platform")


def platform_operator_bootstrap(*, username: str, password: str) -> User:
    """Create the first platform operator (a superuser); refused once one exists."""
    with transaction.atomic():
        if User.objects.filter(is_superuser=True).exists():
            raise PolicyDenied(
                "A platform operator already exists; ask them to add you.",
                code="platform.operator_exists",
            )
        user = User.objects.create_superuser(username=username, password=password)
        record(
            action="user.created",
            actor=Actor.system("bootstrap"),
            target=user,
            data={"username": username, "platform_operator": True},
        )
    return user


def user_create(
    *,
    actor: User,
    username: str,
    password: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    person_id: str | None = None,
) -> User:
    """Create an individual staff account (platform operators only; no shared logins, R-28)."""
    _require_platform_operator(actor)
    if User.objects.filter(username=username).exists():
        raise InvalidInput(
            f"The username {username!r} is taken.",
            code="user.username_taken",
            field_errors={"username": ["Already taken."]},
        )
    with transaction.atomic():
        user = User(username=username, email=email, first_name=first_name, last_name=last_name)
        if person_id:
            user.person_id = uuid.UUID(str(person_id))
        user.set_password(password)
        user.save()
        record(
            action="user.created",
            actor=_actor(actor),
            target=user,
            data={"username": username, "person_id": str(user.person_id)},
        )
    return user


def tenant_create(*, actor: User, slug: str, name: str) -> Tenant:
    """Create a client tenant (platform operators only)."""
    _require_platform_operator(actor)
    if Tenant.objects.filter(slug=slug).exists():
        raise InvalidInput(
            f"A tenant with slug {slug!r} already exists.",
            code="tenant.slug_taken",
            field_errors={"slug": ["Already taken."]},
        )
    with transaction.atomic():
        tenant = Tenant.objects.create(slug=slug, name=name)
        record(
            action="tenant.created",
            actor=_actor(actor),
            tenant=tenant,
            target=tenant,
            data={"slug": slug, "name": name},
        )
    return tenant


def provider_create(*, actor: User, slug: str, name: str) -> ServiceProvider:
    """Register a service provider (MSP) (platform operators only)."""
    _require_platform_operator(actor)
    if ServiceProvider.objects.filter(slug=slug).exists():
        raise InvalidInput(
            f"A provider with slug {slug!r} already exists.",
            code="provider.slug_taken",
            field_errors={"slug": ["Already taken."]},
        )
    with transaction.atomic():
        provider = ServiceProvider.objects.create(slug=slug, name=name)
        record(
            action="provider.created",
            actor=_actor(actor),
            target=provider,
            data={"slug": slug, "name": name},
        )
    return provider


def _authorise_membership_change(actor: User, tenant: Tenant | None) -> None:
    # Tenant memberships: that tenant's admins. Provider memberships: platform operators.
    if tenant is None or not actor.is_superuser:
        if tenant is None:
            _require_platform_operator(actor)
        else:
            _tenant_admin_access(actor, tenant)


def membership_create(
    *,
    actor: User,
    user: User,
    role: str,
    tenant: Tenant | None = None,
    provider: ServiceProvider | None = None,
) -> Membership:
    """Give `user` a role in exactly one tenant or provider."""
    if (tenant is None) == (provider is None):
        raise InvalidInput(
            "A membership belongs to exactly one tenant or one provider.",
            code="membership.scope_invalid",
        )
    if role not in Role.values:
        raise InvalidInput(
            f"Unknown role {role!r}.",
            code="membership.role_invalid",
            field_errors={"role": [f"Choose one of {', '.join(Role.values)}."]},
        )
    with transaction.atomic():
        _authorise_membership_change(actor, tenant)
        membership, created = Membership.objects.get_or_create(
            user=user,
            tenant=tenant,
            provider=provider,
            role=role,
            defaults={"is_active": True},
        )
        if not created and membership.is_active:
            return membership
        if not created:
            # Back after a revocation: an earlier referee certification does not revive.
            membership.is_active, membership.certified_until = True, None
            membership.save(update_fields=["is_active", "certified_until"])
        access_memo_clear()
        record(
            action="membership.created",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=membership,
            data={
                "user": user.get_username(),
                "role": role,
                "provider": provider.slug if provider else None,
            },
        )
    return membership


def membership_change_role(*, actor: User, membership: Membership, role: str) -> Membership:
    """Change the role of a membership; the old role stops counting at once."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", code="membership.role_invalid")
    with transaction.atomic():
        _authorise_membership_change(actor, membership.tenant)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        old = locked.role
        if Membership.objects.filter(
            user_id=locked.user_id,
            tenant_id=locked.tenant_id,
            provider_id=locked.provider_id,
            role=role,
        ).exists():
            raise InvalidInput(
                "The user already has that role here.", code="membership.role_duplicate"
            )
        locked.role = role
        # A referee's certification belongs to that role; it never carries over.
        cleared = locked.certified_until is not None
        locked.certified_until = None
        locked.save(update_fields=["role", "certified_until"])
        access_memo_clear()
        record(
            action="membership.role_changed",
            actor=_actor(actor, locked.tenant),
            tenant=locked.tenant,
            target=locked,
            data={"from": old, "to": role, "certification_cleared": cleared},
        )
    return locked


# Our choice: a referee is re-certified at least yearly (SP 800-63A-4 trusted-referee training).
MAX_CERTIFICATION = timedelta(days=366)


def referee_certify(*, actor: User, membership: Membership, until: datetime) -> Membership:
    """Record that a trusted referee's training is current until `until` (R-09).

    Only a tenant_admin of the membership's own tenant, never for themselves (by person), for
    an active `trusted_referee` membership, with `until` in the future and at most a year and a
    day ahead. A referee without a current certification cannot run attended sessions.
    """
    if until <= timezone.now():
        raise InvalidInput(
            "The certification must run until a moment in the future.",
            code="referee.until_invalid",
            field_errors={"until": ["Must be in the future."]},
        )
    if until - timezone.now() > MAX_CERTIFICATION:
        raise InvalidInput(
            "A certification lasts at most 366 days; certify again after the next training.",
            code="referee.until_too_long",
            field_errors={"until": ["At most 366 days ahead."]},
        )
    if membership.tenant_id is None:
        raise InvalidInput(
            "Only a tenant's own trusted referees are certified, by that tenant.",
            code="referee.tenant_membership_required",
        )
    with transaction.atomic():
        tenant = Tenant.objects.get(pk=membership.tenant_id)
        _tenant_admin_access(actor, tenant)
        locked = (
            Membership.objects.for_tenant(tenant)
            .select_for_update()
            .select_related("user")
            .get(pk=membership.pk)
        )
        if locked.role != Role.TRUSTED_REFEREE or not locked.is_active:
            raise InvalidInput(
                "Only an active trusted_referee membership can be certified.",
                code="referee.role_required",
            )
        if locked.user.person_id == actor.person_id:
            raise PolicyDenied(
                "Another tenant_admin must certify you as a trusted referee.",
                code="sod.certifier_is_referee",
            )
        previous = locked.certified_until
        locked.certified_until = until
        locked.save(update_fields=["certified_until"])
        record(
            action="referee.certified",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=locked,
            data={"user": locked.user.get_username(), "from": previous, "until": until},
        )
    return locked


def membership_revoke(*, actor: User, membership: Membership) -> Membership:
    """End a membership; access computed from it is gone on the user's next request."""
    with transaction.atomic():
        _authorise_membership_change(actor, membership.tenant)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        access_memo_clear()
        record(
            action="membership.revoked",
            actor=_actor(actor, locked.tenant),
            tenant=locked.tenant,
            target=locked,
            data={"role": locked.role},
        )
    return locked


# Roles a grant never gives provider staff: administering the tenant, and administering its
# audit trail (acknowledging its integrity findings), are the client's own.
NOT_DELEGABLE_ROLES = frozenset({Role.TENANT_ADMIN, Role.AUDIT_ADMIN})


def _validate_scope(values: list[str], allowed: list[str], field: str) -> list[str]:
    unknown = sorted(set(values) - set(allowed))
    if not values or unknown:
        raise InvalidInput(
            f"{field} must be a non-empty list of: {', '.join(allowed)}.",
            code="grant.scope_invalid",
            field_errors={field: [f"Unknown: {', '.join(unknown)}." if unknown else "Required."]},
        )
    return sorted(set(values))


def grant_request(
    *,
    actor: User,
    provider: ServiceProvider,
    tenant: Tenant,
    allowed_roles: list[str],
    allowed_tiers: list[str],
    allowed_case_types: list[str],
    valid_from: datetime,
    valid_until: datetime,
) -> DelegationGrant:
    """A provider asks a tenant for delegated access; nothing is granted until approved."""
    if not (
        actor.is_superuser
        or Membership.objects.filter(
            user=actor, provider=provider, role=Role.TENANT_ADMIN, is_active=True
        ).exists()
    ):
        raise PolicyDenied(
            "Only an administrator of the provider may request a grant.",
            code="grant.request_forbidden",
        )
    kept = sorted(set(allowed_roles) & NOT_DELEGABLE_ROLES)
    if kept:
        raise InvalidInput(
            "The tenant's administration and its audit administration stay with the tenant's "
            f"own people (R-48): a grant cannot include {', '.join(kept)}.",
            code="grant.role_not_delegable",
            field_errors={"allowed_roles": [f"Not delegable: {', '.join(kept)}."]},
        )
    roles = _validate_scope(
        allowed_roles, [r for r in Role.values if r not in NOT_DELEGABLE_ROLES], "allowed_roles"
    )
    tiers = _validate_scope(allowed_tiers, Tier.values, "allowed_tiers")
    case_types = _validate_scope(allowed_case_types, CaseType.values, "allowed_case_types")
    if valid_until <= valid_from:
        raise InvalidInput(
            "valid_until must be after valid_from.",
            code="grant.window_invalid",
            field_errors={"valid_until": ["Must be after valid_from."]},
        )
    if valid_until - valid_from > MAX_GRANT_DURATION:
        raise InvalidInput(
            "A grant may last at most 366 days; renew it instead.",
            code="grant.window_too_long",
            field_errors={"valid_until": ["At most 366 days after valid_from."]},
        )
    with transaction.atomic():
        grant = DelegationGrant.objects.create(
            provider=provider,
            tenant=tenant,
            allowed_roles=roles,
            allowed_tiers=tiers,
            allowed_case_types=case_types,
            valid_from=valid_from,
            valid_until=valid_until,
            requested_by=actor,
        )
        record(
            action="grant.requested",
            actor=_actor(actor),
            tenant=tenant,
            target=grant,
            data={
                "provider": provider.slug,
                "roles": roles,
                "tiers": tiers,
                "case_types": case_types,
                "valid_from": valid_from,
                "valid_until": valid_until,
            },
        )
    return grant


def grant_approve(
    *, actor: User, grant: DelegationGrant, step_up: StepUpProof | None
) -> DelegationGrant:
    """A tenant_admin of the grant's tenant activates it, proving a fresh OTP."""
    with transaction.atomic():
        _tenant_admin_access(actor, grant.tenant)
        proof = require_fresh_step_up(step_up, actor)
        locked = (
            DelegationGrant.objects.select_for_update()
            .select_related("requested_by", "tenant", "provider")
            .get(pk=grant.pk)
        )
        if locked.status != GrantStatus.PENDING:
            raise InvalidInput(
                f"Only a pending grant can be approved; this one is {locked.status}.",
                code="grant.not_pending",
            )
        if locked.requested_by.person_id == actor.person_id:
            raise PolicyDenied(
                "The person who requested a grant cannot approve it.",
                code="sod.approver_is_requester",
            )
        locked.status = GrantStatus.ACTIVE
        locked.approved_by = actor
        locked.approved_at = timezone.now()
        locked.save(update_fields=["status", "approved_by", "approved_at"])
        access_memo_clear()
        record(
            action="grant.approved",
            actor=_actor(actor, locked.tenant),
            tenant=locked.tenant,
            target=locked,
            data={"provider": locked.provider.slug, "step_up": proof.audit_data()},
        )
    return locked


def grant_revoke(*, actor: User, grant: DelegationGrant, reason: str) -> DelegationGrant:
    """A tenant_admin ends a grant; its staff lose access on their next request."""
    if not reason.strip():
        raise InvalidInput(
            "Say why the grant is revoked.",
            code="grant.reason_required",
            field_errors={"reason": ["Required."]},
        )
    with transaction.atomic():
        _tenant_admin_access(actor, grant.tenant)
        locked = (
            DelegationGrant.objects.select_for_update()
            .select_related("tenant", "provider")
            .get(pk=grant.pk)
        )
        if locked.status == GrantStatus.REVOKED:
            return locked
        locked.status = GrantStatus.REVOKED
        locked.revoked_by = actor
        locked.revoked_at = timezone.now()
        locked.revoke_reason = reason.strip()
        locked.save(update_fields=["status", "revoked_by", "revoked_at", "revoke_reason"])
        access_memo_clear()
        record(
            action="grant.revoked",
            actor=_actor(actor, locked.tenant),
            tenant=locked.tenant,
            target=locked,
            data={"provider": locked.provider.slug, "reason": reason.strip()},
        )
    return locked
