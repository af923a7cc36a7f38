"""Reads of the changes proposed to a tenant's connector, each starting from the tenant.

(Beside `selectors.py`, which reads the configuration in force and builds connectors.)
"""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.exceptions import CrossTenantNotFound
from tenants.models import Tenant

from .models import ConnectorChange, ConnectorChangeStatus


def connector_change_list(*, tenant: Tenant) -> QuerySet[ConnectorChange]:
    """The tenant's connector changes, newest first, with who requested and decided each."""
    return (
        ConnectorChange.objects.for_tenant(tenant)
        .select_related("requested_by", "decided_by")
        .order_by("-requested_at", "-pk")
    )


def connector_change_pending(*, tenant: Tenant) -> ConnectorChange | None:
    """The one change waiting for a second tenant_admin, or None."""
    return connector_change_list(tenant=tenant).filter(status=ConnectorChangeStatus.PENDING).first()


def connector_change_get_visible(*, tenant: Tenant, pk: int) -> ConnectorChange:
    """One change of `tenant`; another tenant's id is the same 404 as a missing one."""
    change = connector_change_list(tenant=tenant).filter(pk=pk).first()
    if change is None:
        raise CrossTenantNotFound(ConnectorChange._meta.label, pk)
    return change
