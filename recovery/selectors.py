"""Reads of recovery data: each starts from the tenant, then narrows to what the actor may see."""

from __future__ import annotations

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from tenants.exceptions import CrossTenantNotFound
from tenants.models import Tenant, User

from .models import ProtectedAccount


def account_list(*, tenant: Tenant) -> QuerySet[ProtectedAccount]:
    return ProtectedAccount.objects.for_tenant(tenant).order_by("display_name", "id")


def account_get_visible(*, tenant: Tenant, pk: int) -> ProtectedAccount:
    """One account of `tenant`; another tenant's id is the same 404 as a missing one."""
    account = account_list(tenant=tenant).filter(pk=pk).first()
    if account is None:
        raise CrossTenantNotFound(ProtectedAccount._meta.label, pk)
    account.tenant = tenant  # already loaded: spare the lazy read
    return account


def account_reference(*, tenant: Tenant, pk: int) -> ProtectedAccount:
    """An account of `tenant` by id, not read: for a service that reads it under lock
    (`account_locked`), where a missing or another tenant's id is the 404."""
    return ProtectedAccount(pk=pk, tenant=tenant)


def account_locked(*, tenant: Tenant, pk: int) -> ProtectedAccount:
    """One account of `tenant`, read and locked (`FOR UPDATE`) in the caller's transaction;
    another tenant's id is the same 404 as a missing one."""
    account = ProtectedAccount.objects.for_tenant(tenant).select_for_update().filter(pk=pk).first()
    if account is None:
        raise CrossTenantNotFound(ProtectedAccount._meta.label, pk)
    account.tenant = tenant  # the caller's object: no second read of the tenant
    return account


def accounts_with_object_permission(
    *, tenant: Tenant, user: User, perm: str
) -> QuerySet[ProtectedAccount]:
    """Accounts of `tenant` on which `user` holds an explicit per-object `perm`."""
    return get_objects_for_user(
        user,
        perm,
        klass=account_list(tenant=tenant),
        accept_global_perms=False,
        with_superuser=False,
    )
