"""A webhook end to end on a real Celery worker over real Redis, against the test database."""

import time
import uuid
from collections.abc import Iterator

import pytest

from config.celery import app as celery_app
from integrations.choices import DeliveryStatus
from integrations.models import WebhookDelivery
from integrations.signing import verify

from ..factories import make_tenant
from ..worker import celery_worker
from .hooks import emit, subscribe

TASKS = ("integrations.tasks.webhooks_derive_task", "integrations.tasks.webhook_deliver_task")


def _use_routes(routes) -> None:
    celery_app.conf.task_routes = routes
    celery_app.amqp.flush_routes()
    celery_app.amqp.router = celery_app.amqp.Router()  # the router caches the old table


@pytest.fixture
def worker_queue(committed) -> Iterator[str]:
    """A worker on its own queue; the webhook tasks queued by this process are routed to it."""
    queue = f"test-hooks-{uuid.uuid4().hex[:8]}"
    routes = celery_app.conf.task_routes
    _use_routes({task: {"queue": queue} for task in TASKS})
    try:
        with celery_worker(queue):
            yield queue
    finally:
        _use_routes(routes)
        with celery_app.connection_for_write() as conn:  # leave no queue behind in Redis
            conn.default_channel.queue_delete(queue)


def test_worker_delivers_a_signed_webhook_after_commit(worker_queue, receiver):
    tenant = make_tenant()
    _, secret = subscribe(tenant, receiver.url, ["alert.raised"])

    emit(tenant, derive=False)  # on commit the worker derives the delivery, then sends it

    [request] = receiver.wait_for(1, timeout=90)
    assert verify(secret, request.headers["Vouchsafe-Signature"], request.body)
    assert request.headers["Vouchsafe-Event"] == "alert.raised"
    [delivery] = WebhookDelivery.objects.for_tenant(tenant)
    assert request.headers["Vouchsafe-Delivery"] == str(delivery.pk)
    deadline = time.monotonic() + 30
    while delivery.status != DeliveryStatus.DELIVERED and time.monotonic() < deadline:
        time.sleep(0.1)
        delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert len(receiver.requests) == 1
