"""Webhook tasks: thin, by id, idempotent. The work is in integrations.delivery."""

from celery import shared_task

from .delivery import webhook_delivery_attempt, webhook_outbox_sweep
from .outbox import webhooks_derive, webhooks_derive_lagging
from .siem.stream import siem_stream, siem_stream_lagging


# Sent on the request path: no result to store, so a stalled result backend cannot stall it.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def webhook_deliver_task(delivery_id: str) -> str:
    """Send one outbox row now (queued on commit of the event that made it)."""
    return str(webhook_delivery_attempt(delivery_id=delivery_id))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def webhooks_derive_task(tenant_id: int) -> int:
    """Derive the deliveries of the tenant's committed webhook events (queued on commit), then
    make each one's first attempt; the sweep retries what fails."""
    delivery_ids = webhooks_derive(tenant_id=tenant_id)
    for delivery_id in delivery_ids:
        webhook_delivery_attempt(delivery_id=delivery_id)
    return len(delivery_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def webhook_outbox_sweep_task() -> int:
    """Beat: derive what no task derived, then send every due pending delivery (new rows the
    broker missed, and retries)."""
    webhooks_derive_lagging()
    return webhook_outbox_sweep()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def siem_stream_task(tenant_id: int) -> int:
    """Send the tenant's committed audit events past its cursor to its SIEM collector
    (queued on commit, or by the sweep)."""
    return siem_stream(tenant_id=tenant_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def siem_stream_sweep_task() -> int:
    """Beat: a stream task for every tenant whose SIEM is due and behind its chain."""
    return siem_stream_lagging()
