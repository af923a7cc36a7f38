"""Alerts people work (issue 16 part 4): de-duplicated, with a due time, acknowledged, then
resolved or marked a false positive by a security officer.

`on_alert_raised` receives every `alert.raised` inside the transaction that records it: the
event lands on the unresolved alert of the same kind about the same thing (`count` grows, the
newest facts replace the older) or opens a new one, due `ALERT_SLA` later. The trail keeps every
raise; this table is how the security queue sees them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from tenants.access import access_in
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, InvalidInput
from tenants.models import Tenant, User
from tenants.policies import Decision, enforce
from tenants.principals import ai_blocked
from tenants.reasons import reason_given

from .choices import UNRESOLVED, AlertStatus
from .models import Alert

ALERT_SLA = timedelta(hours=1)  # our choice: an alert is looked at within the hour
RAISED = "alert.raised"
OUTCOMES = (AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE)
REASON_MIN = 10


def on_alert_raised(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    """Receiver: every tenant's `alert.raised` onto its alert (de-duplicated)."""
    if event.action != RAISED or event.tenant_id is None:
        return
    kind = str((event.data or {}).get("type", "alert"))[:64]
    unresolved = (
        Alert.objects.select_for_update()
        .filter(
            tenant_id=event.tenant_id,
            kind=kind,
            target_type=event.target_type,
            target_id=event.target_id,
            status__in=UNRESOLVED,
        )
        .first()
    )
    if unresolved is not None:
        unresolved.count += 1
        unresolved.last_raised_at, unresolved.facts = event.created_at, event.data
        unresolved.save(update_fields=["count", "last_raised_at", "facts"])
        return
    Alert.objects.create(
        tenant_id=event.tenant_id,
        kind=kind,
        target_type=event.target_type,
        target_id=event.target_id,
        target_repr=event.target_repr,
        facts=event.data,
        first_raised_at=event.created_at,
        last_raised_at=event.created_at,
        due_at=event.created_at + ALERT_SLA,
    )


def alert_queue(*, tenant: Tenant) -> QuerySet[Alert]:
    """The tenant's alerts: unresolved first (overdue, then due soonest), then the rest."""
    unresolved_first = Case(
        When(status__in=UNRESOLVED, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return Alert.objects.for_tenant(tenant).order_by(unresolved_first, "due_at", "-pk")


def may_work_alerts(actor: User, tenant: Tenant) -> Decision:
    """The tenant's security officers (its own, or provider staff through a grant)."""
    access = access_in(actor, tenant)
    if access is None or Role.SECURITY_OFFICER not in access.roles:
        return Decision(
            False,
            "alert.security_officer_required",
            "Only a security officer of this tenant works its alerts.",
        )
    return Decision(True, "ok")


def _changed(actor: User, tenant: Tenant, alert_id: int, action: str, **changes: Any) -> Alert:
    enforce(ai_blocked(actor, "work an alert"))
    enforce(may_work_alerts(actor, tenant))
    with transaction.atomic():
        alert = Alert.objects.for_tenant(tenant).select_for_update().filter(pk=alert_id).first()
        if alert is None:
            raise CrossTenantNotFound(Alert._meta.label, alert_id)
        if not alert.unresolved:
            raise InvalidInput(
                "This alert is resolved already; reload the page.", code="alert.not_open"
            )
        if action == "alert.acknowledged" and alert.status != AlertStatus.OPEN:
            raise InvalidInput("This alert is acknowledged already.", code="alert.not_open")
        for name, value in changes.items():
            setattr(alert, name, value)
        alert.save()
        record(
            action=action,
            actor=Actor.for_user(actor, organisation=tenant.name),
            tenant=tenant,
            target=alert,
            data={
                "alert": alert.pk,
                "kind": alert.kind,
                "about": f"{alert.target_type}:{alert.target_id}",
                "status": alert.status,
                "count": alert.count,
                "overdue": alert.due_at < timezone.now(),
                **({"reason": alert.resolution} if alert.resolution else {}),
            },
        )
    return alert


def alert_acknowledge(*, actor: User, tenant: Tenant, alert_id: int) -> Alert:
    """Someone is on it: the alert stops being overdue-unseen (its raises still count)."""
    return _changed(
        actor,
        tenant,
        alert_id,
        "alert.acknowledged",
        status=AlertStatus.ACKNOWLEDGED,
        acknowledged_by=actor,
        acknowledged_at=timezone.now(),
    )


def alert_resolve(
    *, actor: User, tenant: Tenant, alert_id: int, outcome: str, reason: str
) -> Alert:
    """Close the alert as dealt with (`resolved`) or as a `false_positive`, saying why; the next
    raise of the same kind about the same thing opens a new alert."""
    if outcome not in OUTCOMES:
        raise InvalidInput(
            "An alert ends resolved or as a false positive.", code="alert.outcome_invalid"
        )
    reason = reason_given(
        reason,
        minimum=REASON_MIN,
        code="alert.reason_required",
        ask=f"Say what was done or found, in at least {REASON_MIN} characters.",
    )
    return _changed(
        actor,
        tenant,
        alert_id,
        "alert.resolved",
        status=outcome,
        resolved_by=actor,
        resolved_at=timezone.now(),
        resolution=reason[:300],
    )
