"""Setting a tenant's connector in tests the only way the code allows: one tenant_admin
proposes the configuration, a second approves it with a fresh step-up (R-27)."""

from __future__ import annotations

from typing import Any

from recovery.connectors.models import ConnectorConfig
from recovery.connectors.services import connector_change_approve, connector_change_request
from tenants.choices import Role
from tenants.models import Tenant

from .factories import staff, step_up


def connector_set(
    tenant: Tenant, *, kind: str, settings: dict[str, Any], is_active: bool = True
) -> ConnectorConfig:
    """`tenant`'s connector configured as given, proposed and approved by two new admins."""
    change = connector_change_request(
        actor=staff(Role.TENANT_ADMIN, tenant=tenant),
        tenant=tenant,
        kind=kind,
        settings=settings,
        is_active=is_active,
    )
    approver = staff(Role.TENANT_ADMIN, tenant=tenant)
    connector_change_approve(actor=approver, change=change, step_up=step_up(approver))
    return ConnectorConfig.objects.for_tenant(tenant).get()
