"""Whose approval no longer counts (R-62).

Who may approve a case at all is `access_rules.DECIDE`, one list of rules for the approval
queue (SQL) and the approval service (one case).
"""

from __future__ import annotations

from tenants.access import TenantAccess

from ..policy.floors import APPROVER_ROLES
from .access_rules import within_grant
from .models import Approval, RecoveryCase


def approval_stands(approval: Approval, case: RecoveryCase, access: TenantAccess | None) -> bool:
    """Whether `approval` still counts: its approver (`access`, read now) still holds, in the
    tenant, every approving role they held when they decided, through a membership or a grant
    that covers the case's tier and type. Fails closed (no access, no approving role: no)."""
    if access is None:
        return False
    held = set(approval.roles) & APPROVER_ROLES
    if not held or not held <= access.roles:
        return False
    return bool(within_grant(access, case))
