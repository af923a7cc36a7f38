"""Pure decisions about who may work, and approve, a recovery case."""

from __future__ import annotations

from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.policies import ALLOW, Decision, can_work_case_type, can_work_tier

from .choices import Route

CASE_WORKERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER})


def _deny(code: str, detail: str) -> Decision:
    return Decision(False, code, detail)


def can_work_case(
    access: TenantAccess | None, *, route: str, tier: str, case_type: str
) -> Decision:
    """Whether the actor may open or collect evidence on a case of this route, tier and type."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if not access.roles & CASE_WORKERS:
        return _deny(
            "case.role_required",
            "Working recovery cases needs the agent, supervisor or security_officer role.",
        )
    for decision in (can_work_tier(access, tier), can_work_case_type(access, case_type)):
        if not decision:
            return decision
    if route == Route.SECURITY and Role.SECURITY_OFFICER not in access.roles:
        return _deny(
            "case.security_queue_only",
            "This case is in the security queue: only security officers work it.",
        )
    return ALLOW


EVIDENCE_READERS = frozenset({Role.AUDITOR, Role.SECURITY_OFFICER})


def can_read_case_evidence(
    access: TenantAccess | None, *, route: str, tier: str, case_type: str
) -> Decision:
    """Whether the actor may read a case's attachments, in any status of the case.

    Whoever may work the case, plus the tenant's auditors and security officers (within the
    tiers and case types of a delegation grant, when they act through one).
    """
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if access.roles & EVIDENCE_READERS:
        for decision in (can_work_tier(access, tier), can_work_case_type(access, case_type)):
            if not decision:
                return decision
        return ALLOW
    return can_work_case(access, route=route, tier=tier, case_type=case_type)
