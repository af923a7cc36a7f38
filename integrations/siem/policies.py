"""Who may set, remove and read the tenant's SIEM destination: pure decisions with codes."""

from __future__ import annotations

from tenants.access import TenantAccess
from tenants.choices import Role, Scope
from tenants.models import User
from tenants.policies import Decision
from tenants.principals import can_use_scope

from ..policies import WEBHOOK_ROLES

STATUS_READER_ROLES = frozenset({Role.TENANT_ADMIN, Role.AUDITOR})


def can_manage_siem(user: User, access: TenantAccess | None) -> Decision:
    """The rule of webhook subscriptions: a key with webhooks:manage, or the tenant's own
    tenant_admin. The stream carries the whole trail, so provider staff acting through a
    delegation grant may not point it anywhere."""
    if access is not None and user.is_human and access.via_grant:
        return Decision(
            False,
            "siem.not_delegable",
            "Service-provider staff cannot set a client tenant's SIEM destination.",
        )
    return can_use_scope(user, access, Scope.WEBHOOKS_MANAGE, WEBHOOK_ROLES)


def can_view_siem(user: User, access: TenantAccess | None) -> Decision:
    """The stream's status: a key with audit:read, or a tenant_admin or auditor."""
    return can_use_scope(user, access, Scope.AUDIT_READ, STATUS_READER_ROLES)
