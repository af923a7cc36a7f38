"""The outbox: the tenant's committed audit chain becomes webhook deliveries.

For an action that is a webhook event type, the receiver of `audit.signals.event_recorded`
only asks a worker, once the transaction commits, to derive the tenant's deliveries (if this
process has seen, within `SUBSCRIBED_TTL_SECONDS`, that the tenant has a subscription):
`webhooks_derive` reads the committed events past the tenant's `WebhookCursor`, inserts one
`WebhookDelivery` per active subscription that asked for each (and, for an alert, one per
alert route: `integrations.routes`) and moves the cursor; the task
then makes each delivery's first attempt. A rolled-back action left no event, so nothing
leaves for it; a broker that is down or a crash between commit and worker loses nothing (the
periodic sweep derives every tenant whose chain is past its cursor, then sends what the
workers never got). Connector requests (`connector_request_enqueue`) are still written in the
caller's transaction.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from audit.consumers import CONSUME_BATCH, chain_consume, chain_consume_soon, chain_lagging
from audit.models import AuditEvent
from tenants.exceptions import InvalidInput
from tenants.models import AlertRoute, Tenant
from tenants.rls import tenant_scope
from tenants.routes import routes_delivering

from .choices import EVENT_TYPE_OF_ACTION, DeliveryKind, DeliveryStatus, WebhookEventType
from .models import WebhookCursor, WebhookDelivery, WebhookSubscription
from .routes import route_deliveries

logger = logging.getLogger(__name__)
SUBSCRIBED_TTL_SECONDS = 10.0
# tenant id -> (until when, whether it has an active subscription), per process
_SUBSCRIBED: dict[int, tuple[float, bool]] = {}

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
    WebhookEventType.CASES_WAITING: ("cases",),
    WebhookEventType.POLICY_ACTIVATED: ("number", "sha256", "superseded"),
    # The tenant's own copy of each signed checkpoint of its chain: enough to check the
    # signature with the published public key and the chain against it, without asking us.
    WebhookEventType.AUDIT_CHECKPOINT_SIGNED: ("statement", "digest", "signature"),
    # A finding on the tenant's chain: the tenant's own security tooling is told at once.
    WebhookEventType.AUDIT_INTEGRITY_FAILING: ("first_bad_seq", "reason", "window"),
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
    """Receiver of audit.signals.event_recorded: once the transaction commits, ask a worker to
    derive the deliveries of a webhook event (no query here; nothing for a rollback)."""
    if event.tenant_id is None or event.action not in EVENT_TYPE_OF_ACTION:
        return  # the common case
    tenant_id = event.tenant_id
    transaction.on_commit(lambda: _derive_soon(tenant_id), robust=True)


def _subscribed(tenant_id: int) -> bool:
    """Whether the tenant has an active subscription or alert route, as this process read it at most
    SUBSCRIBED_TTL_SECONDS ago (or since a subscription changed here). A stale "no" costs
    nothing but time: the sweep derives every tenant whose chain is past its cursor."""
    now = time.monotonic()
    known = _SUBSCRIBED.get(tenant_id)
    if known is None or known[0] <= now:
        with tenant_scope([tenant_id]):
            active = (
                WebhookSubscription.objects.filter(
                    tenant_id=tenant_id, is_active=True, deleted_at__isnull=True
                ).exists()
                or routes_delivering(tenant_id).exists()
            )
        known = _SUBSCRIBED[tenant_id] = (now + SUBSCRIBED_TTL_SECONDS, active)
    return known[1]


def _subscriptions_changed(sender: Any, instance: WebhookSubscription, **kwargs: Any) -> None:
    _SUBSCRIBED.pop(instance.tenant_id, None)


post_save.connect(_subscriptions_changed, sender=WebhookSubscription, dispatch_uid="webhooks-ttl")
post_save.connect(_subscriptions_changed, sender=AlertRoute, dispatch_uid="routes-ttl")


def _derive_soon(tenant_id: int) -> None:
    from .tasks import webhooks_derive_task  # tasks import this module's helpers

    if not _subscribed(tenant_id):
        return  # no task to queue: no one to tell (the sweep catches a subscription made since)
    try:
        chain_consume_soon(WebhookCursor, tenant_id, webhooks_derive_task)
    except Exception:  # the broker is down: the sweep derives it
        logger.warning("webhooks of tenant %s not queued; the sweep will derive them", tenant_id)


def _subscribers(
    subscriptions: list[WebhookSubscription], event: AuditEvent, event_type: str
) -> list[WebhookSubscription]:
    """The subscriptions that hear of `event`: asked for its type and existed when it was
    recorded (a subscription made later does not receive earlier events)."""
    return [
        subscription
        for subscription in subscriptions
        if event_type in subscription.event_types and subscription.created_at <= event.created_at
    ]


def webhooks_derive(*, tenant_id: int, batch: int = CONSUME_BATCH) -> list[str]:
    """Write the deliveries of the tenant's committed webhook events past its cursor
    (`audit.consumers.chain_consume`); their ids."""
    deliveries = chain_consume(
        cursor_model=WebhookCursor,
        tenant_id=tenant_id,
        actions=EVENT_TYPE_OF_ACTION,
        batch=batch,
        consume=lambda events: WebhookDelivery.objects.bulk_create(_deliveries(tenant_id, events)),
    )
    return [str(delivery.pk) for delivery in deliveries]


def _deliveries(tenant_id: int, events: list[AuditEvent]) -> list[WebhookDelivery]:
    subscriptions = list(
        WebhookSubscription.objects.filter(
            tenant_id=tenant_id, is_active=True, deleted_at__isnull=True
        ).order_by("pk")
    )
    tenant = Tenant.objects.get(pk=tenant_id)
    routes = list(routes_delivering(tenant_id).order_by("pk"))
    due = timezone.now()
    deliveries = []
    for event in events:
        deliveries += route_deliveries(tenant=tenant, routes=routes, event=event, due=due)
        event_type = EVENT_TYPE_OF_ACTION[event.action]
        for subscription in _subscribers(subscriptions, event, event_type):
            delivery_id = uuid.uuid4()
            deliveries.append(
                WebhookDelivery(
                    id=delivery_id,
                    tenant_id=tenant_id,
                    subscription=subscription,
                    event_type=event_type,
                    audit_event_id=event.pk,
                    audit_seq=event.seq,
                    payload=event_payload(
                        delivery_id=delivery_id,
                        event_type=event_type,
                        tenant_slug=tenant.slug,
                        event=event,
                    ),
                    next_attempt_at=due,
                )
            )
    return deliveries


def webhooks_derive_lagging() -> int:
    """Derive every tenant whose chain has moved past its cursor (the sweep's first step: it
    catches what a lost task or a crash between commit and worker left); deliveries made."""
    return sum(len(webhooks_derive(tenant_id=t)) for t in chain_lagging(WebhookCursor))


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


def deliveries_of_purged_events_drop(tenant_id: int, through_seq: int) -> None:
    """Before a purge of the tenant's trail up to `through_seq` (audit.retention): drop the
    webhook deliveries of those events, which are done; refuse while one is still pending."""
    deliveries = WebhookDelivery.objects.filter(
        tenant_id=tenant_id,
        kind__in=(DeliveryKind.EVENT, DeliveryKind.ROUTE),
        audit_seq__lte=through_seq,
    )
    if deliveries.filter(status=DeliveryStatus.PENDING).exists():
        raise InvalidInput(
            "Webhook deliveries of events this purge removes are still being tried; finish the "
            "purge once they are delivered or given up.",
            code="audit.purge_deliveries_pending",
        )
    deliveries.delete()
