"""Reads of tenancy data, each starting from the tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from .exceptions import CrossTenantNotFound
from .models import DelegationGrant, Tenant


def grant_list(*, tenant: Tenant) -> QuerySet[DelegationGrant]:
    """The tenant's delegation grants, newest first."""
    return (
        DelegationGrant.objects.for_tenant(tenant)
        .select_related("provider", "requested_by", "approved_by")
        .order_by("-created_at", "-id")
    )


def grant_get_visible(*, tenant: Tenant, pk: int) -> DelegationGrant:
    """One grant of `tenant`; another tenant's id is the same 404 as a missing one."""
    grant = grant_list(tenant=tenant).filter(pk=pk).first()
    if grant is None:
        raise CrossTenantNotFound(DelegationGrant._meta.label, pk)
    return grant
