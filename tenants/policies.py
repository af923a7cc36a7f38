"""Pure decisions about tenancy: no database writes, no side effects, a reason code each."""

from __future__ import annotations

from dataclasses import dataclass

from .access import TenantAccess
from .choices import Role
from .exceptions import PolicyDenied


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    detail: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True, "ok")


def enforce(decision: Decision) -> None:
    """Turn a refusal into the typed PolicyDenied a service raises."""
    if not decision:
        raise PolicyDenied(decision.detail, code=decision.code)


def _deny(code: str, detail: str) -> Decision:
    return Decision(False, code, detail)


def can_administer_tenant(access: TenantAccess | None) -> Decision:
    """Memberships, grants and tenant settings belong to the tenant's own tenant_admins."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if access.via_grant:
        return _deny(
            "tenant.admin_not_delegable",
            "Service-provider staff cannot administer a client tenant.",
        )
    if Role.TENANT_ADMIN not in access.roles:
        return _deny("tenant.admin_required", "Only a tenant_admin of this tenant may do this.")
    return ALLOW


def can_view_grants(access: TenantAccess | None) -> Decision:
    """The tenant's own admins, security officers and auditors see its delegation grants."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    readers = {Role.AUDITOR, Role.SECURITY_OFFICER, Role.TENANT_ADMIN}
    if access.via_grant or not access.roles & readers:
        return _deny(
            "grant.read_forbidden",
            "Delegation grants are visible to the tenant's own admins, security officers "
            "and auditors.",
        )
    return ALLOW


def can_read_audit(access: TenantAccess | None) -> Decision:
    """The trail, its exports and alerts: the tenant's auditors, audit admins, security officers
    and admins."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    readers = {Role.AUDITOR, Role.AUDIT_ADMIN, Role.SECURITY_OFFICER, Role.TENANT_ADMIN}
    if not access.roles & readers:
        return _deny(
            "audit.read_forbidden",
            "The audit trail is for the tenant's auditors, audit admins, security officers and "
            "admins.",
        )
    return ALLOW


def _audit_admin(access: TenantAccess | None, what: str) -> Decision:
    """The tenant's own audit_admin (R-48): not a tenant admin, not provider staff through a
    grant; `what` ends "Only an audit admin of this tenant may …"."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if access.via_grant:
        return _deny(
            "audit.admin_not_delegable",
            "Service-provider staff cannot administer a client tenant's audit trail.",
        )
    if Role.AUDIT_ADMIN not in access.roles:
        return _deny("audit.admin_required", f"Only an audit admin of this tenant may {what}.")
    return ALLOW


def can_acknowledge_integrity(access: TenantAccess | None) -> Decision:
    """A finding of the tenant's audit chain is acknowledged by the tenant's own audit_admin."""
    return _audit_admin(access, "acknowledge an audit integrity finding")


def can_administer_audit(access: TenantAccess | None) -> Decision:
    """Retention, legal holds and purges of the tenant's trail: its own audit_admins (R-48)."""
    return _audit_admin(access, "change retention, legal holds or purges of the audit trail")
