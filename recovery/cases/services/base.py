"""The parts every case service shares: the locked case, the worker's access, the audit actor."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.access import TenantAccess, access_in
from tenants.choices import Tier
from tenants.models import User
from tenants.policies import enforce

from ...policy.rules import CasePolicy, Requirements
from ...policy.selectors import policy_for_case
from ..models import RecoveryCase
from ..policies import can_work_case
from ..transitions import Move, case_move

TIER_RANK = {tier: rank for rank, tier in enumerate(Tier.values)}


def audit_actor_of(user: User, access: TenantAccess | None, tenant: Any) -> Actor:
    return Actor.for_user(user, organisation=(access.organisation if access else "") or tenant.name)


def case_locked(case: RecoveryCase) -> RecoveryCase:
    return RecoveryCase.objects.for_tenant(case.tenant).select_for_update().get(pk=case.pk)


def db_now(case: RecoveryCase) -> datetime:
    """Database time, so expiry is set by the same clock that checks it."""
    return (
        RecoveryCase.objects.for_tenant(case.tenant)
        .filter(pk=case.pk)
        .annotate(db_now=Now())
        .values_list("db_now", flat=True)
        .get()
    )


def case_end(
    case: RecoveryCase,
    move: Move,
    *,
    status: str,
    reason: str,
    ended_at: datetime | None = None,
) -> None:
    """End a locked case by `move` (an edge of the transition table): its final status, when
    (now unless given) and why."""
    case_move(case, move, status)
    case.end_reason = reason
    case.ended_at = ended_at or timezone.now()
    case.revision += 1
    case.save(update_fields=["status", "ended_at", "end_reason", "revision", "updated_at"])


def workflow_move(case: RecoveryCase, move: Move, to: str, **data: Any) -> None:
    """The workflow moves the locked case by `move` to `to`, saves it (with its
    `cooling_off_until`) and records `case.status_changed` with `data`, in the caller's
    transaction."""
    case_move(case, move, to)
    case.revision += 1
    case.save(update_fields=["status", "cooling_off_until", "revision", "updated_at"])
    record(
        action="case.status_changed",
        actor=Actor.system("workflow"),
        tenant=case.tenant,
        target=case,
        data={"to": to, **data},
    )


def requirements_for(case: RecoveryCase, policy: CasePolicy | None = None) -> Requirements:
    """What `case` needs at this step: rule by rule the stricter of the policy version it was
    opened under and the active one (`policy_for_case`); `policy_versions` names both."""
    return (policy or policy_for_case(case)).requirements(case.tier, case.case_type)


def work_access(actor: User, case: RecoveryCase) -> TenantAccess:
    access = access_in(actor, case.tenant)
    enforce(can_work_case(access, route=case.route, tier=case.tier, case_type=case.case_type))
    assert access is not None  # guaranteed by the policy above
    return access


def record_digest(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def alert_raise(case: RecoveryCase, kind: str, **data: Any) -> None:
    """Raise a detection for the security queue, recorded with the case (R-55, R-26)."""
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=case.tenant,
        target=case,
        data={"type": kind, **data},
    )
