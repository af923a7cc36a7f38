"""Moves of a case that no one decides: release after cooling-off, cancellation, expiry."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now

from audit.context import Actor
from audit.services import record
from tenants.models import Tenant, User
from tenants.rls import system_scope

from ...artifacts.services import artifacts_revoke_for_case
from ...policy.schema import CASE_IDLE_LIMIT
from ...policy.selectors import policy_active, policy_for_case
from ..choices import (
    CaseStatus,
)
from ..models import RecoveryCase
from ..transitions import EXPIRABLE, TRANSITIONS, Move, transition_require
from .approval import case_policy_recheck_locked
from .base import (
    audit_actor_of,
    case_end,
    case_locked,
    requirements_for,
    work_access,
    workflow_move,
)

EXPIRE_BATCH = 200


def case_release_cooled(*, case: RecoveryCase) -> RecoveryCase:
    """Move a case whose cooling-off has passed to `ready` (database time decides), unless a
    policy tightened since the case opened sends it back (`case_policy_recheck_locked`)."""
    with transaction.atomic():
        case = case_locked(case)
        due = RecoveryCase.objects.filter(pk=case.pk, cooling_off_until__lte=Now()).exists()
        if not TRANSITIONS[Move.RELEASE].allows(case.status) or not due:
            return case
        policy = policy_for_case(case)
        if case_policy_recheck_locked(case, policy):
            return case
        workflow_move(case, Move.RELEASE, CaseStatus.READY, policy_versions=policy.versions)
    return case


def case_cancel(*, actor: User | None, case: RecoveryCase, reason: str) -> RecoveryCase:
    """Cancel an open case (its worker, or the owner during cooling-off with `actor=None`)."""
    with transaction.atomic():
        case = case_locked(case)
        if actor is not None:
            access = work_access(actor, case)
            audit_actor = audit_actor_of(actor, access, case.tenant)
        else:
            audit_actor = Actor.system("account-owner")
        transition_require(case, Move.CANCEL)
        case_end(case, Move.CANCEL, status=CaseStatus.CANCELLED, reason=reason.strip()[:2000])
        artifacts_revoke_for_case(case=case, reason="case_cancelled", actor=audit_actor)
        record(
            action="case.cancelled",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={"reason": case.end_reason},
        )
    return case


def _idle_past(limit_seconds: int) -> CombinedExpression:
    """The last change a case may have had and still be idle past `limit_seconds` (database
    time: the clock that stamps `updated_at`'s comparisons is the one that checks it)."""
    return Now() - timedelta(seconds=limit_seconds)


def case_expire_idle(*, case: RecoveryCase) -> RecoveryCase:
    """End an open case nobody changed for its policy's `case_idle_limit_seconds` (by database
    time) as `expired`, revoking its artifacts, with one `case.expired` event.

    Idempotent: a case that moved or changed since it was picked is left as it is.
    """
    with transaction.atomic():
        case = case_locked(case)
        if not TRANSITIONS[Move.EXPIRE].allows(case.status):
            return case
        limit = requirements_for(case).case_idle_limit_seconds
        idle = RecoveryCase.objects.filter(pk=case.pk, updated_at__lte=_idle_past(limit))
        if not idle.exists():
            return case
        system = Actor.system("workflow")
        previous, last_change = case.status, case.updated_at
        case_end(
            case,
            Move.EXPIRE,
            status=CaseStatus.EXPIRED,
            reason=f"No change for {limit} seconds, the policy's idle limit.",
        )
        revoked = artifacts_revoke_for_case(case=case, reason="case_expired", actor=system)
        record(
            action="case.expired",
            actor=system,
            tenant=case.tenant,
            target=case,
            data={
                "from": previous,
                "last_change": last_change,
                "idle_limit_seconds": limit,
                "policy_version": case.policy_version,
                "artifacts_revoked": revoked,
            },
        )
    return case


def case_expire_sweep(*, batch: int = EXPIRE_BATCH) -> int:
    """Expire every open case idle past its limit: the limit of each tenant, tier and case
    type from the tenant's policy, then the cases past it claimed with SKIP LOCKED a batch
    per transaction (two sweeps never take the same case), each expired by
    `case_expire_idle`. Returns how many expired."""
    with system_scope():
        groups = list(
            RecoveryCase.objects.filter(
                status__in=EXPIRABLE, updated_at__lte=_idle_past(CASE_IDLE_LIMIT["minimum"])
            )
            .values_list("tenant_id", "tier", "case_type")
            .distinct()
            .order_by("tenant_id", "tier", "case_type")
        )
        tenants = Tenant.objects.in_bulk({tenant_id for tenant_id, _t, _c in groups})
    expired = 0
    for tenant_id, tier, case_type in groups:
        while True:
            with system_scope():
                limit = (
                    policy_active(tenants[tenant_id])
                    .requirements(tier, case_type)
                    .case_idle_limit_seconds
                )
                due = list(
                    RecoveryCase.objects.select_for_update(skip_locked=True)
                    .select_related("tenant")
                    .filter(
                        tenant_id=tenant_id,
                        tier=tier,
                        case_type=case_type,
                        status__in=EXPIRABLE,
                        updated_at__lte=_idle_past(limit),
                    )
                    .order_by("pk")[:batch]
                )
                done = sum(case_expire_idle(case=case).status == CaseStatus.EXPIRED for case in due)
            expired += done
            if len(due) < batch or not done:  # a batch that expired nothing ends the group
                break
    return expired
