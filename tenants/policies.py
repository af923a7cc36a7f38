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


def can_view_audit(access: TenantAccess | None) -> Decision:
    """Auditors, security officers and tenant admins read the tenant's trail."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    readers = {Role.AUDITOR, Role.SECURITY_OFFICER, Role.TENANT_ADMIN}
    if not access.roles & readers:
        return _deny(
            "audit.read_forbidden",
            "Reading the audit trail needs the auditor, security_officer or tenant_admin role.",
        )
    return ALLOW


def can_work_tier(access: TenantAccess | None, tier: str) -> Decision:
    """Whether the actor may work on an account of `tier` (grants may restrict tiers)."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if access.tiers is not None and tier not in access.tiers:
        return _deny(
            "grant.tier_not_allowed",
            f"Your organisation's delegation grant does not cover {tier} accounts.",
        )
    return ALLOW


def can_work_case_type(access: TenantAccess | None, case_type: str) -> Decision:
    """Whether the actor may work on a case of `case_type` (grants may restrict types)."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if access.case_types is not None and case_type not in access.case_types:
        return _deny(
            "grant.case_type_not_allowed",
            f"Your organisation's delegation grant does not cover {case_type} cases.",
        )
    return ALLOW
