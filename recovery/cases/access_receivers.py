"""R-62: when a membership or a grant ends or loses a role, the approvals it carried stop counting,
and the people who lost it are signed out and their pending step-ups cancelled, at once.

`tenants` knows nothing of cases; it records `membership.revoked`, `membership.role_changed`
and `grant.revoked` in the transaction of the change, and this receiver of `event_recorded`,
in that same transaction: voids the live approvals that no longer stand
(`approvals_void_stale`), ends every console session of the users concerned and cancels their
unspent step-up challenges (`auth.sessions_ended`, one event per user). Counting re-checks the
role as well (`case_needs`), so an approval still counts for nothing if a change bypassed the
services.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from tenants.models import DelegationGrant, Membership, Tenant, User
from tenants.sessions import sessions_end_for_users

from .choices import CaseStatus
from .models import Approval, RecoveryCase, StepUpChallenge
from .services import approvals_void_stale

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
        approvals_void_stale(case=case)
    _signed_out(event, users, tenant_id)


def _signed_out(event: AuditEvent, users: list[int], tenant_id: int | None) -> None:
    """End the users' sessions and cancel their queued step-ups, recorded per user (R-62)."""
    sessions = sessions_end_for_users(users)
    pending = StepUpChallenge.objects.filter(
        user_id__in=users, spent_at__isnull=True, cancelled_at__isnull=True
    )
    if tenant_id is not None:
        pending = pending.filter(tenant_id=tenant_id)
    cancelled: dict[int, int] = {}
    for user_id in pending.values_list("user_id", flat=True):
        cancelled[user_id] = cancelled.get(user_id, 0) + 1
    pending.update(cancelled_at=timezone.now())
    tenant = Tenant.objects.filter(pk=event.tenant_id).first()
    for user in User.objects.filter(pk__in=set(sessions) | set(cancelled)).order_by("pk"):
        record(
            action="auth.sessions_ended",
            actor=Actor.system("access-control"),
            tenant=tenant,
            target=user,
            data={
                "cause": event.action,
                "cause_event": event.pk,
                "sessions": sessions.get(user.pk, 0),
                "step_up_challenges_cancelled": cancelled.get(user.pk, 0),
            },
        )
