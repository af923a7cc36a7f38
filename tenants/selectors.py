"""Reads of tenancy data, each starting from the tenant."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet
from django.utils import timezone

from .choices import GrantStatus, PrincipalKind
from .exceptions import CrossTenantNotFound
from .models import ApiKey, DelegationGrant, ServiceProvider, Tenant, User


def tenant_people(
    tenant_id: int, roles: Iterable[str], *, with_grants: bool = False
) -> QuerySet[User]:
    """Active people holding one of `roles` in the tenant through its own active memberships;
    with `with_grants`, also the staff of providers holding an active grant on it (who to ask:
    callers check each one's access before telling them anything about a case)."""
    roles = list(roles)
    held = Q(
        memberships__tenant_id=tenant_id,
        memberships__tenant__is_active=True,
        memberships__role__in=roles,
        memberships__is_active=True,
    )
    if with_grants:
        now = timezone.now()
        held |= Q(
            memberships__provider__grants__tenant_id=tenant_id,
            memberships__provider__grants__status=GrantStatus.ACTIVE,
            memberships__provider__grants__valid_from__lte=now,
            memberships__provider__grants__valid_until__gt=now,
            memberships__role__in=roles,
            memberships__is_active=True,
        )
    return User.objects.filter(held, is_active=True, kind=PrincipalKind.HUMAN).distinct()


def grant_list(*, tenant: Tenant) -> QuerySet[DelegationGrant]:
    """The tenant's delegation grants, newest first."""
    return (
        DelegationGrant.objects.for_tenant(tenant)
        .select_related("provider", "tenant", "requested_by", "approved_by")
        .order_by("-created_at", "-id")
    )


def grant_get_visible(*, tenant: Tenant, pk: int) -> DelegationGrant:
    """One grant of `tenant`; another tenant's id is the same 404 as a missing one."""
    grant = grant_list(tenant=tenant).filter(pk=pk).first()
    if grant is None:
        raise CrossTenantNotFound(DelegationGrant._meta.label, pk)
    return grant


def provider_grant_list(*, provider: ServiceProvider) -> QuerySet[DelegationGrant]:
    """Every grant a service provider holds or asked for, across its client tenants."""
    return (
        DelegationGrant.objects.filter(provider=provider)
        .select_related("provider", "tenant", "requested_by", "approved_by")
        .order_by("-created_at", "-id")
    )


def apikey_list(*, tenant: Tenant) -> QuerySet[ApiKey]:
    """The tenant's API keys (live, expired and revoked), newest first."""
    return (
        ApiKey.objects.for_tenant(tenant).select_related("principal", "created_by").order_by("-id")
    )


def apikey_get_visible(*, tenant: Tenant, pk: int) -> ApiKey:
    """One key of `tenant`; another tenant's id is the same 404 as a missing one."""
    key = apikey_list(tenant=tenant).filter(pk=pk).first()
    if key is None:
        raise CrossTenantNotFound(ApiKey._meta.label, pk)
    return key
