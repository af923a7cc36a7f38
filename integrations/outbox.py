"""The transactional outbox: an audit event becomes webhook deliveries in its own transaction.

`audit.signals.event_recorded` is sent inside the transaction of every append. For an action
that is a webhook event type this module inserts one `WebhookDelivery` per active subscription
of the tenant that asked for it, and asks a worker to send them once the transaction commits.
A rolled-back action leaves no delivery; a broker that is down loses nothing (the periodic
sweep sends what the worker never got).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from tenants.models import Tenant

from .choices import EVENT_TYPE_OF_ACTION, DeliveryKind, DeliveryStatus, WebhookEventType
from .models import WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

# What of an event's audit data a receiver sees: an allow-list per type, never free text the
# staff typed (reasons, notes), step-up proofs or anything secret.
SAFE_FIELDS: dict[str, tuple[str, ...]] = {
    WebhookEventType.CASE_OPENED: (
        "account",
        "case_type",
        "channel",
        "tier",
        "route",
        "repeat_attempt",
        "policy_version",
    ),
    WebhookEventType.CASE_SUBMITTED: ("classes",),
    WebhookEventType.CASE_STATUS_CHANGED: ("to", "cooling_off_until"),
    WebhookEventType.CASE_CANCELLED: (),
    WebhookEventType.APPROVAL_APPROVED: ("approval", "roles", "policy_version"),
    WebhookEventType.APPROVAL_DENIED: ("approval", "roles", "policy_version"),
    WebhookEventType.ALERT_RAISED: ("type", "evidence", "approvals"),
    WebhookEventType.POLICY_ACTIVATED: ("number", "sha256", "superseded"),
}


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent for a payload: canonical JSON, the same on every attempt."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def event_payload(
    *, delivery_id: uuid.UUID, event_type: str, tenant_slug: str, event: AuditEvent
) -> dict[str, Any]:
    """The webhook body for one delivery of `event`."""
    data: dict[str, Any] = {"target_type": event.target_type, "target_id": event.target_id}
    for name in SAFE_FIELDS.get(event_type, ()):
        if name in event.data:
            data[name] = event.data[name]
    return {
        "id": str(delivery_id),
        "type": event_type,
        "tenant": tenant_slug,
        "occurred_at": event.created_at.isoformat(),
        "sequence": event.seq,
        "actor": {"type": event.actor_type, "label": event.actor_label},
        "data": data,
    }


def _enqueue(delivery_ids: list[str]) -> None:
    from .tasks import webhook_deliver_task  # tasks import this module's helpers

    for delivery_id in delivery_ids:
        try:
            webhook_deliver_task.delay(delivery_id)
        except Exception:  # the broker is down: the sweep will send it
            logger.warning("webhook delivery %s not queued; the sweep will send it", delivery_id)
            return


def on_event_recorded(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    """Receiver of audit.signals.event_recorded: write the outbox rows for this event."""
    event_type = EVENT_TYPE_OF_ACTION.get(event.action)
    if event_type is None or event.tenant_id is None:
        return  # the common case: no query at all
    subscriptions = [
        subscription
        for subscription in WebhookSubscription.objects.for_tenant(Tenant(pk=event.tenant_id))
        .filter(is_active=True, deleted_at__isnull=True)
        .select_related("tenant")
        .order_by("pk")
        if event_type in subscription.event_types
    ]
    if not subscriptions:
        return
    due = timezone.now()
    deliveries = []
    for subscription in subscriptions:
        delivery_id = uuid.uuid4()
        deliveries.append(
            WebhookDelivery(
                id=delivery_id,
                tenant_id=event.tenant_id,
                subscription=subscription,
                event_type=event_type,
                audit_event_id=event.pk,
                audit_seq=event.seq,
                payload=event_payload(
                    delivery_id=delivery_id,
                    event_type=event_type,
                    tenant_slug=subscription.tenant.slug,
                    event=event,
                ),
                next_attempt_at=due,
            )
        )
    WebhookDelivery.objects.bulk_create(deliveries)
    ids = [str(delivery.pk) for delivery in deliveries]
    transaction.on_commit(lambda: _enqueue(ids), robust=True)


def connector_request_enqueue(
    *,
    tenant_id: int,
    event_type: str,
    request_key: str,
    data: dict[str, Any],
    repeatable: bool = False,
) -> tuple[str, bool]:
    """A recovery connector's request to the tenant's automation, as an outbox row.

    Registered with `recovery.connectors.webhook.outbox_register` when the app starts. Written
    in the caller's transaction (inside the tenant's scope) and queued after its commit, like
    an event. One row per `request_key`: asking again returns it (created=False). With
    `repeatable` a new row is made once the previous one with that key has left the outbox.
    Returns (delivery id, created).
    """
    tenant = Tenant.objects.get(pk=tenant_id)
    rows = WebhookDelivery.objects.for_tenant(tenant).filter(kind=DeliveryKind.CONNECTOR)
    if repeatable:
        existing = rows.filter(
            request_key__startswith=f"{request_key}#", status=DeliveryStatus.PENDING
        ).first()
        key = f"{request_key}#{uuid.uuid4().hex}"
    else:
        existing = rows.filter(request_key=request_key).first()
        key = request_key
    if existing is not None:
        return str(existing.pk), False
    delivery_id = uuid.uuid4()
    now = timezone.now()
    payload = {
        "id": str(delivery_id),
        "type": event_type,
        "tenant": tenant.slug,
        "occurred_at": now.isoformat(),
        "request": key,
        "data": data,
    }
    try:
        with transaction.atomic():  # a savepoint: a concurrent twin loses cleanly
            WebhookDelivery.objects.create(
                id=delivery_id,
                tenant=tenant,
                kind=DeliveryKind.CONNECTOR,
                event_type=event_type,
                audit_seq=0,
                request_key=key,
                payload=payload,
                next_attempt_at=now,
            )
    except IntegrityError:
        existing = rows.filter(request_key=key).first()
        if existing is None:
            raise
        return str(existing.pk), False
    transaction.on_commit(lambda: _enqueue([str(delivery_id)]), robust=True)
    return str(delivery_id), True
