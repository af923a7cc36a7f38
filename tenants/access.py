"""The one answer to "in which tenants may this actor act right now, and with which roles"."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.db.models.functions import Now
from django.http import Http404

from .choices import GrantStatus
from .memo import forget, remembered
from .models import DelegationGrant, Membership, Tenant, User

ACCESS = "access"  # the request memo's kind for an actor's access (`tenants.memo`)


@dataclass(frozen=True)
class TenantAccess:
    """What an actor may do in one tenant, and through which path."""

    tenant_id: int
    roles: frozenset[str]
    # Set when the access comes through an MSP delegation grant (and limited by it).
    provider_id: int | None = None
    provider_name: str = ""
    grant_id: int | None = None
    tiers: frozenset[str] | None = None
    case_types: frozenset[str] | None = None

    @property
    def via_grant(self) -> bool:
        return self.grant_id is not None

    @property
    def organisation(self) -> str:
        return self.provider_name


def access_memo_clear() -> None:
    """Forget remembered access: memberships or grants changed in this request."""
    forget(ACCESS)


def actor_tenant_access(user: User) -> dict[int, TenantAccess]:
    """Tenants where `user` may act now: own memberships plus live grants of their providers.

    A grant counts only while active, approved and inside its window by database time; an
    inactive membership, tenant or provider counts for nothing. Direct tenant membership wins
    over a grant for the same tenant (it is the tenant's own staff).
    """
    if not user.is_authenticated or not user.is_active:
        return {}
    return remembered(ACCESS, user.pk, lambda: _read_access(user))


def _read_access(user: User) -> dict[int, TenantAccess]:
    live = Q(tenant__is_active=True) | Q(provider__is_active=True)
    rows = Membership.objects.filter(live, user=user, is_active=True).values_list(
        "tenant_id", "provider_id", "role"
    )
    access: dict[int, TenantAccess] = {}
    provider_roles: dict[int, set[str]] = {}
    for tenant_id, provider_id, role in rows:
        if tenant_id is not None:
            current = access.get(tenant_id)
            roles = (current.roles if current else frozenset()) | {role}
            access[tenant_id] = TenantAccess(tenant_id=tenant_id, roles=roles)
        else:
            provider_roles.setdefault(provider_id, set()).add(role)
    if not provider_roles:
        return access
    grants = (
        DelegationGrant.objects.filter(
            Q(provider_id__in=provider_roles),
            status=GrantStatus.ACTIVE,
            tenant__is_active=True,
            valid_from__lte=Now(),
            valid_until__gt=Now(),
        )
        .select_related("provider")
        .order_by("id")
    )
    for grant in grants:
        if grant.tenant_id in access:
            continue
        roles = frozenset(provider_roles[grant.provider_id]) & frozenset(grant.allowed_roles)
        if roles:
            access[grant.tenant_id] = TenantAccess(
                tenant_id=grant.tenant_id,
                roles=roles,
                provider_id=grant.provider_id,
                provider_name=grant.provider.name,
                grant_id=grant.pk,
                tiers=frozenset(grant.allowed_tiers),
                case_types=frozenset(grant.allowed_case_types),
            )
    return access


def access_in(user: User, tenant: Tenant) -> TenantAccess | None:
    """The actor's access in one tenant right now, or None."""
    return actor_tenant_access(user).get(tenant.pk)


def tenant_for_actor(user: User, slug: str) -> tuple[Tenant, TenantAccess]:
    """Resolve the tenant named in the URL for this actor, or 404 as if it did not exist."""
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    access = actor_tenant_access(user).get(tenant.pk) if tenant else None
    if tenant is None or access is None:
        raise Http404("No such tenant.")
    return tenant, access
