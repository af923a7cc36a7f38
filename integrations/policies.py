"""Who may manage webhooks and send events: pure decisions with reason codes."""

from __future__ import annotations

from tenants.access import TenantAccess
from tenants.choices import Role, Scope
from tenants.models import User
from tenants.policies import Decision
from tenants.principals import can_use_scope

WEBHOOK_ROLES = frozenset({Role.TENANT_ADMIN})
INGEST_ROLES = frozenset({Role.TENANT_ADMIN, Role.SECURITY_OFFICER})


def can_manage_webhooks(user: User, access: TenantAccess | None) -> Decision:
    """A key with webhooks:manage, or the tenant's own tenant_admin.

    A webhook sends the tenant's case stream to a URL, so service-provider staff acting
    through a delegation grant may not create or change one.
    """
    if access is not None and user.is_human and access.via_grant:
        return Decision(
            False,
            "webhook.not_delegable",
            "Service-provider staff cannot manage a client tenant's webhooks.",
        )
    return can_use_scope(user, access, Scope.WEBHOOKS_MANAGE, WEBHOOK_ROLES)


def can_ingest_events(user: User, access: TenantAccess | None) -> Decision:
    """A key with events:ingest, or a tenant_admin or security_officer."""
    return can_use_scope(user, access, Scope.EVENTS_INGEST, INGEST_ROLES)
