"""Sending deliveries: retries with backoff, one delivery per row, a log of every attempt."""

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from integrations.choices import DeliveryStatus
from integrations.delivery import backoff, webhook_outbox_sweep
from integrations.models import WebhookDelivery
from integrations.selectors import (
    webhook_delivery_attempt_list,
    webhook_delivery_get_visible,
    webhook_delivery_list,
)
from integrations.services import webhook_secret_rotate, webhook_subscription_update
from integrations.signing import verify
from integrations.tasks import webhook_deliver_task
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound

from ..factories import staff
from .hooks import emit, subscribe

pytestmark = pytest.mark.django_db


def only_delivery(tenant) -> WebhookDelivery:
    [delivery] = WebhookDelivery.objects.for_tenant(tenant)
    return delivery


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def attempts_of(delivery):
    return list(webhook_delivery_attempt_list(tenant=delivery.tenant, delivery=delivery))


def test_backoff_doubles_from_30_seconds_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(8).total_seconds() == 3600 and backoff(500).total_seconds() == 3600


def test_server_error_is_logged_and_retried_later_until_delivered(acme, receiver):
    subscribe(acme, receiver.url, ["alert.raised"])
    receiver.statuses.extend([500])
    emit(acme)
    delivery = only_delivery(acme)

    before = timezone.now()
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
    wait = delivery.next_attempt_at - before
    assert timedelta(seconds=29) <= wait <= timedelta(seconds=35)
    [first] = attempts_of(delivery)
    assert (first.number, first.status_code, first.error) == (1, 500, "HTTP 500")
    assert first.duration_ms >= 0

    # Not due yet: nothing is sent.
    assert webhook_deliver_task(str(delivery.pk)) == "skipped"
    assert len(receiver.requests) == 1

    make_due(delivery)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.DELIVERED
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
    assert delivery.last_status_code == 200 and delivery.last_error == ""
    assert [(a.number, a.status_code) for a in attempts_of(delivery)] == [(1, 500), (2, 200)]
    first_request, second_request = receiver.requests
    assert first_request.body == second_request.body  # a retry sends the same bytes …
    assert (
        first_request.headers["Vouchsafe-Delivery"]
        == second_request.headers["Vouchsafe-Delivery"]
        == str(delivery.pk)
    )  # … with the same id, so the receiver can drop a duplicate


def test_running_the_task_twice_delivers_once(acme, receiver):
    subscribe(acme, receiver.url, ["alert.raised"])
    emit(acme)
    delivery = only_delivery(acme)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.DELIVERED
    assert webhook_deliver_task(str(delivery.pk)) == "skipped"
    make_due(delivery)  # even once "due" again, a delivered row is never sent twice
    assert webhook_deliver_task(str(delivery.pk)) == "skipped"
    assert len(receiver.requests) == 1
    assert len(attempts_of(delivery)) == 1


def test_delivery_is_given_up_after_the_last_attempt_and_audited(acme, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    subscribe(acme, receiver.url, ["alert.raised"])
    receiver.default_status = 503
    emit(acme)
    delivery = only_delivery(acme)
    for _ in range(3):
        make_due(delivery)
        webhook_deliver_task(str(delivery.pk))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and delivery.attempts == 3
    assert delivery.last_status_code == 503
    [dead] = AuditEvent.objects.filter(
        tenant=acme, action="webhook.delivery_dead", target_id=str(delivery.pk)
    )
    assert dead.data["attempts"] == 3 and dead.data["last_error"] == "HTTP 503"
    make_due(delivery)
    assert webhook_deliver_task(str(delivery.pk)) == "skipped"
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed(acme, receiver):
    subscribe(acme, receiver.url, ["alert.raised"])
    receiver.statuses.extend([302])
    receiver.redirect_to = receiver.url.replace("/hooks/vouchsafe", "/followed")
    emit(acme)
    delivery = only_delivery(acme)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.PENDING
    assert [r.path for r in receiver.wait_for(2, timeout=1.0)] == ["/hooks/vouchsafe"]
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302 and "redirect" in delivery.last_error


def test_a_slow_receiver_times_out_and_is_retried(acme, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    subscribe(acme, receiver.url, ["alert.raised"])
    receiver.delay_seconds = 1.5
    emit(acme)
    delivery = only_delivery(acme)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and delivery.last_error == "read timeout"
    [attempt] = attempts_of(delivery)
    assert attempt.error == "read timeout" and 250 <= attempt.duration_ms < 1500


def test_unreachable_receiver_is_a_failed_attempt_not_a_crash(acme):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscribe(acme, f"http://127.0.0.1:{port}/closed?token=abc", ["alert.raised"])
    emit(acme)
    delivery = only_delivery(acme)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_error == "connection failed"  # never the URL, which may hold a token


def test_the_address_guard_is_checked_again_at_delivery_time(acme, receiver, settings):
    subscribe(acme, receiver.url, ["alert.raised"])
    emit(acme)
    delivery = only_delivery(acme)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False  # e.g. DNS now points somewhere private
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.PENDING
    assert receiver.wait_for(1, timeout=0.5) == []
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("not sent:") and delivery.attempts == 1


def test_delivery_of_a_paused_subscription_is_given_up_without_sending(acme, receiver):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, _ = subscribe(acme, receiver.url, ["alert.raised"], admin=admin)
    emit(acme)
    webhook_subscription_update(actor=admin, subscription=subscription, is_active=False)
    delivery = only_delivery(acme)
    assert webhook_deliver_task(str(delivery.pk)) == DeliveryStatus.DEAD
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and receiver.requests == []
    assert AuditEvent.objects.filter(
        tenant=acme, action="webhook.delivery_dead", target_id=str(delivery.pk)
    ).exists()


def test_a_retry_after_rotation_is_signed_with_the_new_secret(acme, receiver):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, old = subscribe(acme, receiver.url, ["alert.raised"], admin=admin)
    receiver.statuses.extend([500])
    emit(acme)
    delivery = only_delivery(acme)
    webhook_deliver_task(str(delivery.pk))
    new = webhook_secret_rotate(actor=admin, subscription=subscription)
    make_due(delivery)
    webhook_deliver_task(str(delivery.pk))
    first, second = receiver.requests
    assert verify(old, first.headers["Vouchsafe-Signature"], first.body)
    assert verify(new, second.headers["Vouchsafe-Signature"], second.body)
    assert not verify(old, second.headers["Vouchsafe-Signature"], second.body)


def test_sweep_sends_due_rows_of_every_tenant_and_leaves_the_rest(acme, globex, receiver):
    subscribe(acme, receiver.url, ["alert.raised"])
    subscribe(globex, receiver.url, ["alert.raised"])
    emit(acme)
    emit(globex)
    later = only_delivery(globex)
    WebhookDelivery.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert webhook_outbox_sweep() == 1
    assert only_delivery(acme).status == DeliveryStatus.DELIVERED
    assert only_delivery(globex).status == DeliveryStatus.PENDING
    [request] = receiver.requests
    assert json.loads(request.body)["tenant"] == acme.slug


def test_delivery_reads_are_tenant_scoped(acme, globex, receiver):
    mine, _ = subscribe(acme, receiver.url, ["alert.raised"])
    subscribe(globex, receiver.url, ["alert.raised"])
    emit(acme)
    emit(globex)
    theirs = only_delivery(globex)
    assert [d.subscription_id for d in webhook_delivery_list(tenant=acme)] == [mine.pk]
    assert list(webhook_delivery_list(tenant=acme, subscription=mine)) == [only_delivery(acme)]
    with pytest.raises(CrossTenantNotFound):
        webhook_delivery_get_visible(tenant=acme, pk=theirs.pk)
    with pytest.raises(CrossTenantNotFound):
        webhook_delivery_get_visible(tenant=acme, pk="not-a-uuid")
    with pytest.raises(CrossTenantNotFound):
        webhook_delivery_attempt_list(tenant=acme, delivery=theirs)
