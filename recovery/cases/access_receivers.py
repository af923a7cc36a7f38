"""R-62: when a membership or a grant ends or loses a role, the approvals it carried stop counting.

`tenants` knows nothing of cases; it records `membership.revoked`, `membership.role_changed`
and `grant.revoked` in the transaction of the change, and this receiver of `event_recorded`
voids, in that same transaction, the live approvals whose approver no longer holds the role
(`approvals_void_lost_role`). Counting re-checks the role as well (`case_needs`), so an
approval still counts for nothing if a change bypassed the services.
"""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent
from tenants.models import DelegationGrant, Membership

from .choices import CaseStatus
from .models import Approval, RecoveryCase
from .services import approvals_void_lost_role

ACCESS_REMOVED = frozenset({"membership.revoked", "membership.role_changed", "grant.revoked"})
DECIDABLE = (CaseStatus.PENDING_APPROVAL, CaseStatus.COOLING_OFF, CaseStatus.READY)


def _affected(event: AuditEvent) -> tuple[list[int], int | None] | None:
    """The users whose access changed, and the one tenant it changed in (None: any)."""
    if event.target_type == Membership._meta.label:
        row = Membership.objects.filter(pk=event.target_id).values("user_id", "tenant_id")
        membership = row.first()
        if membership is None:
            return None
        return [membership["user_id"]], membership["tenant_id"]
    if event.target_type == DelegationGrant._meta.label:
        grant = DelegationGrant.objects.filter(pk=event.target_id).first()
        if grant is None:
            return None
        users = Membership.objects.filter(provider_id=grant.provider_id).values_list(
            "user_id", flat=True
        )
        return list(users), grant.tenant_id
    return None


def on_access_removed(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    """Receiver: void the approvals the ended membership or grant carried (R-62)."""
    if event.action not in ACCESS_REMOVED:
        return
    affected = _affected(event)
    if affected is None:
        return
    users, tenant_id = affected
    approvals = Approval.objects.filter(approver_id__in=users, invalidated_at__isnull=True)
    if tenant_id is not None:
        approvals = approvals.filter(tenant_id=tenant_id)
    cases = (
        RecoveryCase.objects.filter(pk__in=approvals.values("case_id"), status__in=DECIDABLE)
        .select_related("tenant")
        .order_by("pk")
    )
    for case in cases:
        approvals_void_lost_role(case=case)
