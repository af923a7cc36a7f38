"""Webhook and event tables under row-level security, as the restricted app role sees them."""

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from integrations.choices import DeliveryStatus
from integrations.models import IngestedEvent, WebhookDelivery, WebhookSubscription
from integrations.tasks import webhook_outbox_sweep_task
from tenants.models import User

from ..approle import as_app_role
from ..factories import make_account
from .hooks import emit, subscribe

pytestmark = pytest.mark.django_db


def test_outbox_rows_are_written_in_the_tenant_scope_and_others_stay_invisible(
    app_role, acme, globex, receiver
):
    mine, _ = subscribe(acme, receiver.url, ["alert.raised"])
    subscribe(globex, receiver.url, ["alert.raised"])
    emit(globex)
    with as_app_role([acme.pk]):
        emit(acme)  # the worker's derivation inserts the delivery as the app role
        assert list(WebhookSubscription.objects.values_list("pk", flat=True)) == [mine.pk]
        [delivery] = WebhookDelivery.objects.all()  # no for_tenant(): RLS filters
        assert delivery.tenant_id == acme.pk
    assert WebhookDelivery.objects.count() == 2  # the owner role sees both


def test_app_role_cannot_write_a_subscription_into_another_tenant(app_role, acme, globex):
    admin = User.objects.create(username="rls-admin")
    their_account = make_account(globex)
    refused = pytest.raises(DatabaseError, match="row-level security")
    with as_app_role([acme.pk]), refused, transaction.atomic():
        WebhookSubscription.objects.create(
            tenant=globex, url="http://127.0.0.1:9/", secret="s", created_by=admin
        )
    with as_app_role([acme.pk]), refused, transaction.atomic():
        IngestedEvent.objects.create(
            tenant=globex,
            account=their_account,
            event_type="sim_change",
            occurred_at=timezone.now(),
            received_by=admin,
        )


def test_sweep_as_app_role_reaches_every_tenant_through_system_scope(
    app_role, acme, globex, receiver
):
    subscribe(acme, receiver.url, ["alert.raised"])
    subscribe(globex, receiver.url, ["alert.raised"])
    emit(acme, derive=False)
    emit(globex, derive=False)
    with as_app_role(None):
        assert WebhookDelivery.objects.count() == 0  # no scope: nothing visible
        assert webhook_outbox_sweep_task() == 2  # derives both tenants' events, then sends
    statuses = set(WebhookDelivery.objects.values_list("status", flat=True))
    assert statuses == {DeliveryStatus.DELIVERED}
    assert len(receiver.requests) == 2
