"""The webhook connector: a signed POST to the tenant's automation through the webhook outbox
(same rows, retries, delivery log and signature as every other webhook), sent to a real local
HTTP receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from integrations.choices import DeliveryKind, DeliveryStatus
from integrations.delivery import webhook_delivery_attempt, webhook_outbox_sweep
from integrations.models import WebhookDelivery, WebhookDeliveryAttempt
from integrations.outbox import connector_request_enqueue
from integrations.signing import verify
from recovery.connectors import connector_for
from recovery.connectors.webhook import WebhookConnector, outbox_register

from ...approle import as_app_role
from ...connector_helpers import connector_set
from ...factories import make_account

pytestmark = pytest.mark.django_db

KEY_ENV = "VOUCHSAFE_TEST_AUTOMATION_KEY"
KEY = "automation-signing-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def configure(tenant, url: str, *, is_active: bool = True) -> WebhookConnector:
    connector_set(
        tenant,
        kind="webhook",
        settings={"url": url, "secret_env": KEY_ENV},
        is_active=is_active,
    )
    return connector_for(tenant)


def connector_rows(tenant) -> list[WebhookDelivery]:
    return list(
        WebhookDelivery.objects.for_tenant(tenant)
        .filter(kind=DeliveryKind.CONNECTOR)
        .order_by("created_at")
    )


def make_due(delivery_id: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_execute_queues_one_signed_request_that_reaches_the_automation(acme, receiver):
    hook = configure(acme, receiver.url)
    account = make_account(acme)

    with transaction.atomic():
        result = hook.execute(account=account, case_type="password_reset", case_id=77)

    assert result.ok and result.connector == "webhook"
    assert result.path == f"webhook {receiver.url.rsplit('/hooks', 1)[0]}"
    assert result.detail["asynchronous"] is True and result.detail["queued"] is True
    [row] = connector_rows(acme)
    assert str(row.pk) == result.detail["delivery"] and row.subscription_id is None
    assert (row.event_type, row.request_key, row.status) == (
        "connector.execute",
        "execute:77",
        DeliveryStatus.PENDING,
    )
    assert result.snapshot.state == {
        "connector": "webhook",
        "case_id": 77,
        "case_type": "password_reset",
        "request": str(row.pk),
    }

    assert webhook_delivery_attempt(delivery_id=row.pk) == DeliveryStatus.DELIVERED
    [request] = receiver.requests
    assert request.path == "/hooks/vouchsafe"
    assert request.headers["Vouchsafe-Event"] == "connector.execute"
    assert request.headers["Vouchsafe-Delivery"] == str(row.pk)
    assert verify(KEY, request.headers["Vouchsafe-Signature"], request.body)
    assert not verify("another key", request.headers["Vouchsafe-Signature"], request.body)
    body = json.loads(request.body)
    assert body["type"] == "connector.execute" and body["tenant"] == acme.slug
    assert body["request"] == "execute:77" and body["id"] == str(row.pk)
    assert body["data"] == {
        "operation": "execute",
        "case": 77,
        "case_type": "password_reset",
        "account": {"external_id": account.external_id, "username": account.username},
    }
    assert KEY not in request.body.decode()
    [attempt] = WebhookDeliveryAttempt.objects.for_tenant(acme).filter(delivery=row)
    assert attempt.status_code == 200


def test_executing_twice_queues_the_request_once(acme, receiver):
    hook = configure(acme, receiver.url)
    account = make_account(acme)
    first = hook.execute(account=account, case_type="mfa_reset", case_id=5)
    second = hook.execute(account=account, case_type="mfa_reset", case_id=5)
    assert first.detail["delivery"] == second.detail["delivery"]
    assert second.detail["queued"] is False and second.detail["changed"] is False
    assert len(connector_rows(acme)) == 1
    webhook_delivery_attempt(delivery_id=first.detail["delivery"])
    hook.execute(account=account, case_type="mfa_reset", case_id=5)  # after delivery, too
    assert len(connector_rows(acme)) == 1 and len(receiver.requests) == 1


def test_the_database_holds_one_row_per_request_key(acme, receiver):
    hook = configure(acme, receiver.url)
    first = hook.execute(account=make_account(acme), case_type="mfa_reset", case_id=6)
    row = WebhookDelivery.objects.get(pk=first.detail["delivery"])
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(
            tenant=acme,
            kind=DeliveryKind.CONNECTOR,
            event_type=row.event_type,
            audit_seq=0,
            request_key=row.request_key,
            payload={},
            next_attempt_at=timezone.now(),
        )
    with pytest.raises(IntegrityError), transaction.atomic():  # a connector row has a key
        WebhookDelivery.objects.create(
            tenant=acme,
            kind=DeliveryKind.CONNECTOR,
            event_type=row.event_type,
            audit_seq=0,
            payload={},
            next_attempt_at=timezone.now(),
        )


def test_a_failed_delivery_is_retried_with_backoff_until_delivered(acme, receiver):
    hook = configure(acme, receiver.url)
    receiver.statuses.extend([503])
    result = hook.execute(account=make_account(acme), case_type="temporary_access", case_id=8)
    delivery = result.detail["delivery"]

    assert webhook_delivery_attempt(delivery_id=delivery) == DeliveryStatus.PENDING
    row = WebhookDelivery.objects.get(pk=delivery)
    assert (row.attempts, row.last_status_code) == (1, 503)
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=25)  # backoff
    assert webhook_delivery_attempt(delivery_id=delivery) == "skipped"  # not due yet
    make_due(delivery)
    assert webhook_outbox_sweep() == 1  # the periodic sweep takes connector rows too
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 2
    first, second = receiver.requests
    assert first.body == second.body  # a retry sends the same bytes


def test_revert_asks_the_automation_to_undo_the_named_request(acme, receiver):
    hook = configure(acme, receiver.url)
    account = make_account(acme)
    executed = hook.execute(account=account, case_type="password_reset", case_id=9)

    reverted = hook.revert(account=account, snapshot=executed.snapshot)
    again = hook.revert(account=account, snapshot=executed.snapshot)

    assert reverted.ok and again.detail["delivery"] == reverted.detail["delivery"]
    rows = connector_rows(acme)
    assert [r.event_type for r in rows] == ["connector.execute", "connector.revert"]
    assert rows[1].payload["data"]["reverts"] == executed.detail["delivery"]
    assert rows[1].payload["data"]["case"] == 9
    foreign = hook.revert(account=account, snapshot=type(executed.snapshot)("x", {"dn": "cn=x"}))
    assert not foreign.ok and "not taken by the webhook connector" in foreign.error


def test_revoke_is_queued_once_while_pending_and_again_after_delivery(acme, receiver):
    hook = configure(acme, receiver.url)
    account = make_account(acme)
    first = hook.revoke_temporary_access(account=account)
    second = hook.revoke_temporary_access(account=account)
    assert first.detail["delivery"] == second.detail["delivery"] and not second.detail["queued"]
    assert webhook_delivery_attempt(delivery_id=first.detail["delivery"]) == "delivered"
    third = hook.revoke_temporary_access(account=account)
    assert third.detail["queued"] and third.detail["delivery"] != first.detail["delivery"]
    assert json.loads(receiver.requests[0].body)["type"] == "connector.revoke_temporary_access"


def test_a_missing_signing_key_gives_the_request_up_and_records_it(acme, receiver, monkeypatch):
    hook = configure(acme, receiver.url)
    result = hook.execute(account=make_account(acme), case_type="mfa_reset", case_id=10)
    monkeypatch.delenv(KEY_ENV)
    assert not hook.health().ok
    assert webhook_delivery_attempt(delivery_id=result.detail["delivery"]) == DeliveryStatus.DEAD
    assert receiver.requests == []
    [dead] = AuditEvent.objects.filter(tenant=acme, action="webhook.delivery_dead")
    assert KEY_ENV in dead.data["last_error"] and dead.data["subscription"] is None


def test_a_deactivated_connector_stops_its_pending_requests(acme, receiver):
    hook = configure(acme, receiver.url)
    result = hook.execute(account=make_account(acme), case_type="mfa_reset", case_id=11)
    configure(acme, receiver.url, is_active=False)
    assert webhook_delivery_attempt(delivery_id=result.detail["delivery"]) == DeliveryStatus.DEAD
    assert receiver.requests == []


def test_without_an_outbox_the_connector_fails_closed(acme, receiver):
    hook = configure(acme, receiver.url)
    outbox_register(None)
    try:
        result = hook.execute(account=make_account(acme), case_type="mfa_reset", case_id=12)
        assert not result.ok and "No webhook outbox" in result.error
        assert not hook.health().ok
    finally:
        outbox_register(connector_request_enqueue)
    assert connector_rows(acme) == []
    assert hook.health().ok


def test_requests_are_written_in_the_tenant_scope_as_the_app_role(app_role, acme, globex, receiver):
    mine = configure(acme, receiver.url)
    configure(globex, receiver.url)
    account = make_account(acme)
    with as_app_role([acme.pk]):
        result = mine.execute(account=account, case_type="mfa_reset", case_id=13)
        assert result.ok
        assert [str(r.pk) for r in WebhookDelivery.objects.all()] == [result.detail["delivery"]]
    assert connector_rows(globex) == []
