"""The outbox with real commits: a broker that is down, and two workers racing for one row."""

import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from audit.models import AuditEvent
from config.celery import app as celery_app
from integrations.choices import DeliveryStatus
from integrations.delivery import webhook_delivery_attempt
from integrations.models import WebhookDelivery, WebhookDeliveryAttempt
from integrations.signing import verify
from integrations.tasks import webhook_outbox_sweep_task

from ..factories import make_tenant
from .hooks import emit, subscribe


def _reset_broker_connections() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_down(committed) -> Iterator[None]:
    """The Celery broker is unreachable (nothing listens on port 1), as in an outage."""
    url = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    _reset_broker_connections()
    try:
        yield
    finally:
        celery_app.conf.broker_url = url
        _reset_broker_connections()


def test_rows_written_while_the_broker_is_down_are_sent_by_the_sweep(broker_down, receiver):
    tenant = make_tenant()
    _, secret = subscribe(tenant, receiver.url, ["alert.raised"])

    event = emit(
        tenant, derive=False
    )  # commits; asking a worker to derive its delivery fails after that

    assert AuditEvent.objects.filter(pk=event.pk).exists()  # the action itself succeeded
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()
    assert receiver.wait_for(1, timeout=1.0) == []

    assert webhook_outbox_sweep_task() >= 1  # beat runs it; any worker that is up will do
    [delivery] = WebhookDelivery.objects.for_tenant(tenant)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    [request] = receiver.wait_for(1)
    assert request.headers["Vouchsafe-Delivery"] == str(delivery.pk)
    assert verify(secret, request.headers["Vouchsafe-Signature"], request.body)


def test_two_workers_racing_for_one_row_send_it_once(broker_down, receiver):
    tenant = make_tenant()
    subscribe(tenant, receiver.url, ["alert.raised"])
    emit(tenant)  # derived; with the broker down, sending waits for a worker
    [delivery] = WebhookDelivery.objects.for_tenant(tenant)
    receiver.delay_seconds = (
        1.0  # the first request is still in flight when the second worker looks
    )
    start = threading.Barrier(2)
    results: list[str] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(webhook_delivery_attempt(delivery_id=delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [DeliveryStatus.DELIVERED, "skipped"]
    time.sleep(0.2)
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert WebhookDeliveryAttempt.objects.filter(delivery=delivery).count() == 1
