"""A webhook end to end on a real Celery worker over real Redis, against the test database."""

import time
from collections.abc import Iterator

import pytest

from integrations.choices import DeliveryStatus
from integrations.models import WebhookDelivery
from integrations.signing import verify

from ..factories import make_tenant
from ..worker import routed_worker
from .hooks import emit, subscribe

TASKS = ("integrations.tasks.webhooks_derive_task", "integrations.tasks.webhook_deliver_task")


@pytest.fixture
def worker_queue(committed) -> Iterator[str]:
    """A worker on its own queue; the tasks this module queues are routed to it."""
    with routed_worker(TASKS, "test-hooks") as queue:
        yield queue


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
