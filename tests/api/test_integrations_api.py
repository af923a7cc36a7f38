"""Webhook subscriptions and events in, over the API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integrations.models import IngestedEvent, WebhookDelivery, WebhookSubscription
from integrations.outbox import webhooks_derive
from tenants.choices import Role

from .. import factories
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db

HOOK = {"url": "http://127.0.0.1:9/vouchsafe", "event_types": ["case.opened"]}


def test_subscription_secret_is_shown_once_and_cases_fill_the_outbox(acme, acme_api):
    created = acme_api.post(api(acme, "webhooks/"), HOOK, format="json")
    assert created.status_code == 201, created.content
    subscription_id = created.json()["id"]
    assert len(created.json()["secret"]) >= 32
    shown = acme_api.get(api(acme, f"webhooks/{subscription_id}/")).json()
    assert "secret" not in shown
    account = factories.make_account(acme)
    acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    )
    webhooks_derive(tenant_id=acme.pk)  # what the worker does once the case has committed
    deliveries = acme_api.get(api(acme, f"webhooks/{subscription_id}/deliveries/")).json()
    assert [d["event_type"] for d in deliveries["results"]] == ["case.opened"]
    assert WebhookDelivery.objects.filter(subscription_id=subscription_id).count() == 1


def test_subscription_update_and_delete(acme, acme_api):
    subscription_id = acme_api.post(api(acme, "webhooks/"), HOOK, format="json").json()["id"]
    patched = acme_api.patch(
        api(acme, f"webhooks/{subscription_id}/"), {"is_active": False}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert acme_api.delete(api(acme, f"webhooks/{subscription_id}/")).status_code == 204
    assert acme_api.get(api(acme, f"webhooks/{subscription_id}/")).status_code == 404
    assert WebhookSubscription.objects.get(pk=subscription_id).deleted_at is not None


def test_unknown_event_type_is_a_field_error(acme, acme_api):
    response = acme_api.post(
        api(acme, "webhooks/"), {**HOOK, "event_types": ["case.teleported"]}, format="json"
    )
    assert response.status_code == 400 and "event_types.0" in response.json()["errors"]


def test_an_agent_cannot_manage_webhooks(acme):
    agent = factories.staff(Role.AGENT, tenant=acme)
    response = staff_api_client(agent).post(api(acme, "webhooks/"), HOOK, format="json")
    assert response.status_code == 403 and response.json()["code"] == "auth.scope_missing"


def test_event_ingest_validates_per_type_and_deduplicates(acme, acme_api):
    account = factories.make_account(acme)
    event = {
        "event_type": "push_denied_burst",
        "account_external_id": account.external_id,
        "occurred_at": timezone.now().isoformat(),
        "source": "entra",
        "external_id": "evt-1",
        "data": {"count": 12, "window_seconds": 300},
    }
    first = acme_api.post(api(acme, "events/"), event, format="json")
    again = acme_api.post(api(acme, "events/"), event, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert IngestedEvent.objects.filter(tenant=acme).count() == 1
    bad = acme_api.post(
        api(acme, "events/"), {**event, "external_id": "evt-2", "data": {"count": 0}}, format="json"
    )
    assert bad.status_code == 400
    assert {"data.count", "data.window_seconds"} <= set(bad.json()["errors"])


def test_event_for_another_tenants_account_is_refused(acme, globex, acme_api):
    foreign = factories.make_account(globex)
    response = acme_api.post(
        api(acme, "events/"),
        {
            "event_type": "sim_change",
            "account_external_id": foreign.external_id,
            "occurred_at": timezone.now().isoformat(),
            "data": {},
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "event.account_unknown"


def test_ingest_needs_its_scope(acme):
    reader = key_client(acme, ["cases:read"])
    response = reader.get(api(acme, "events/"))
    assert response.status_code == 403 and response.json()["code"] == "auth.scope_missing"
