"""The outbox: the committed audit chain becomes deliveries (derived by a worker past the
tenant's cursor), sent only after commit; nothing is derived for a rolled-back action."""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from config.celery import app as celery_app
from integrations.choices import DeliveryStatus
from integrations.models import WebhookCursor, WebhookDelivery
from integrations.outbox import on_event_recorded, webhooks_derive, webhooks_derive_lagging
from integrations.services import webhook_subscription_update
from integrations.signing import verify
from integrations.tasks import webhook_outbox_sweep_task, webhooks_derive_task
from recovery.cases.services import case_open
from tenants.choices import Role

from ..factories import make_account, staff
from .hooks import emit, subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    """Tasks run in-process when queued (what a worker would do, without one)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def deliveries(tenant):
    return list(WebhookDelivery.objects.for_tenant(tenant).order_by("created_at"))


def derived(tenant):
    """What the worker does once the events have committed, then the tenant's deliveries."""
    webhooks_derive(tenant_id=tenant.pk)
    return deliveries(tenant)


def test_event_makes_one_delivery_per_active_subscription_that_asked_for_it(acme, globex):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    wants, _ = subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"], admin=admin)
    also, _ = subscribe(acme, "http://127.0.0.1:9/b", ["case.opened", "alert.raised"], admin=admin)
    subscribe(acme, "http://127.0.0.1:9/c", ["case.opened"], admin=admin)
    paused, _ = subscribe(acme, "http://127.0.0.1:9/d", ["alert.raised"], admin=admin)
    webhook_subscription_update(actor=admin, subscription=paused, is_active=False)
    subscribe(globex, "http://127.0.0.1:9/e", ["alert.raised"])

    event = emit(acme)

    made = derived(acme)
    assert {d.subscription_id for d in made} == {wants.pk, also.pk}
    assert not WebhookDelivery.objects.for_tenant(globex).exists()
    for delivery in made:
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
        assert delivery.audit_event_id == event.pk and delivery.audit_seq == event.seq
        assert delivery.event_type == "alert.raised"
        assert delivery.payload["id"] == str(delivery.pk)


def test_payload_carries_safe_fields_only(acme):
    subscribe(acme, "http://127.0.0.1:9/a", ["approval.approved"])
    account = make_account(acme)
    event = emit(
        acme,
        "approval.approved",
        target=account,
        data={
            "approval": 7,
            "roles": ["supervisor"],
            "policy_version": 3,
            "reason": "caller's manager said her PIN is 4321",
            "step_up": {"nonce": "secret-nonce", "device": "totp"},
            "snapshot": "abc",
        },
    )
    [delivery] = derived(acme)
    assert delivery.payload == {
        "id": str(delivery.pk),
        "type": "approval.approved",
        "tenant": acme.slug,
        "occurred_at": event.created_at.isoformat(),
        "sequence": event.seq,
        "actor": {"type": "system", "label": "detection"},
        "data": {
            "target_type": "recovery.ProtectedAccount",
            "target_id": str(account.pk),
            "approval": 7,
            "roles": ["supervisor"],
            "policy_version": 3,
        },
    }
    assert "4321" not in json.dumps(delivery.payload)
    assert "secret-nonce" not in json.dumps(delivery.payload)


def test_a_real_case_opening_queues_a_case_opened_delivery(acme):
    subscribe(acme, "http://127.0.0.1:9/a", ["case.opened"])
    account = make_account(acme)
    case = case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    [delivery] = derived(acme)
    assert delivery.event_type == "case.opened"
    data = delivery.payload["data"]
    assert data["target_type"] == "recovery.RecoveryCase" and data["target_id"] == str(case.pk)
    assert data["account"] == account.external_id and data["tier"] == case.tier
    assert data["case_type"] == "unlock" and data["channel"] == "phone"


@pytest.mark.parametrize("action", ["case.note_added", "alert.raised"])
def test_the_event_transaction_spends_no_query_on_webhooks(
    acme, action, django_capture_on_commit_callbacks
):
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    event = AuditEvent(tenant_id=acme.pk, action=action, data={})
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks() as callbacks,
    ):
        on_event_recorded(sender=AuditEvent, event=event)
    assert len(queries) == 0
    assert len(callbacks) == (action == "alert.raised")  # a worker derives it after commit
    assert not WebhookDelivery.objects.for_tenant(acme).exists()


def test_a_worker_is_asked_only_for_a_tenant_with_subscriptions(
    acme, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[int] = []
    monkeypatch.setattr(webhooks_derive_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme, derive=False)
    assert queued == []  # nobody to tell: no broker round trip after the commit
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])  # seen at once by this process
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme, derive=False)
    assert queued == [acme.pk]


def test_one_task_is_queued_until_it_starts_reading_the_chain(
    acme, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[int] = []
    monkeypatch.setattr(webhooks_derive_task, "delay", queued.append)
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            first = emit(acme, derive=False)
    assert queued == [acme.pk]  # the first task reads all three: one broker message
    webhooks_derive(tenant_id=acme.pk)  # the task starts: the flag comes down first
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme, derive=False)
    assert queued == [acme.pk, acme.pk]  # committed after the read began: a task of its own
    assert WebhookDelivery.objects.for_tenant(acme).filter(audit_event=first).exists()


def test_a_broker_failure_lowers_the_flag_for_the_next_event(
    acme, monkeypatch, django_capture_on_commit_callbacks
):
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])

    def broker_down(tenant_id: int) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(webhooks_derive_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme, derive=False)
    queued: list[int] = []
    monkeypatch.setattr(webhooks_derive_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        emit(acme, derive=False)
    assert queued == [acme.pk]


def test_platform_events_make_no_delivery(acme):
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    with transaction.atomic():
        record(action="alert.raised", actor=Actor.system(), data={"type": "x"})
    webhooks_derive_lagging()
    assert not WebhookDelivery.objects.exists()


def test_each_event_is_derived_once_and_the_cursor_reaches_the_head(acme):
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    first, second = emit(acme, derive=False), emit(acme, derive=False)
    emit(acme, "case.note_added", data={}, derive=False)  # not a webhook event: no delivery
    assert len(webhooks_derive(tenant_id=acme.pk)) == 2
    assert webhooks_derive(tenant_id=acme.pk) == []  # a second worker finds nothing left
    assert [d.audit_seq for d in deliveries(acme)] == [first.seq, second.seq]
    assert WebhookCursor.objects.get(tenant=acme).seq == second.seq + 1


def test_a_derivation_in_batches_skips_nothing(acme):
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    events = [emit(acme, derive=False) for _ in range(3)]
    webhooks_derive(tenant_id=acme.pk, batch=2)
    assert [d.audit_seq for d in deliveries(acme)] == [e.seq for e in events]


def test_events_left_by_a_lost_task_are_derived_by_the_sweep(acme, globex):
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    subscribe(globex, "http://127.0.0.1:9/b", ["alert.raised"])
    emit(acme, derive=False)  # committed, but no worker ever ran (crash, broker down)
    emit(globex, derive=False)
    assert webhook_outbox_sweep_task() >= 0
    assert len(deliveries(acme)) == 1 and len(deliveries(globex)) == 1


def test_a_subscription_hears_only_of_events_recorded_after_it(acme):
    emit(acme, derive=False)
    subscribe(acme, "http://127.0.0.1:9/a", ["alert.raised"])
    later = emit(acme, derive=False)
    assert [d.audit_seq for d in derived(acme)] == [later.seq]


def test_rolled_back_action_leaves_no_delivery_and_sends_nothing(
    acme, receiver, eager, django_capture_on_commit_callbacks
):
    subscribe(acme, receiver.url, ["alert.raised"])
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        emit(acme, derive=False)
        raise RuntimeError("the action fails after its audit event")
    assert callbacks == []  # no worker is asked …
    assert derived(acme) == []  # … and the chain holds nothing to derive
    assert receiver.wait_for(1, timeout=1.0) == []


def test_delivery_is_sent_after_commit_signed_with_the_secret(
    acme, receiver, eager, django_capture_on_commit_callbacks
):
    _, secret = subscribe(acme, receiver.url, ["alert.raised"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        emit(acme, derive=False)
    assert receiver.requests == [] and deliveries(acme) == []  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()  # what the commit runs: derive, then (on its commit) send
    [request] = receiver.wait_for(1)
    [delivery] = deliveries(acme)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.delivered_at is not None
    assert request.path == "/hooks/vouchsafe"
    assert request.headers["Vouchsafe-Event"] == "alert.raised"
    assert request.headers["Vouchsafe-Delivery"] == str(delivery.pk)
    assert request.headers["Content-Type"] == "application/json"
    assert verify(secret, request.headers["Vouchsafe-Signature"], request.body)
    assert not verify("wrong", request.headers["Vouchsafe-Signature"], request.body)
    assert not verify(secret, request.headers["Vouchsafe-Signature"], request.body + b" ")
    assert json.loads(request.body) == delivery.payload
    assert secret not in request.body.decode()
