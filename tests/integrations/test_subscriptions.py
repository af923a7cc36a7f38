"""Webhook subscriptions: who may manage them, what URLs they may name, and their audit trail."""

import json

import pytest
from auditlog.models import LogEntry

from audit.models import AuditEvent
from integrations.choices import DeliveryStatus
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.selectors import (
    webhook_delivery_list,
    webhook_subscription_get_visible,
    webhook_subscription_list,
)
from integrations.services import (
    webhook_secret_rotate,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)
from tenants.choices import Role, Scope
from tenants.exceptions import CrossTenantNotFound, InvalidInput, PolicyDenied

from ..factories import active_grant, make_user, member, staff
from .hooks import emit, key_principal, subscribe

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.test/vouchsafe"


def audit_of(subscription, action):
    return list(
        AuditEvent.objects.filter(
            tenant_id=subscription.tenant_id, action=action, target_id=str(subscription.pk)
        )
    )


def test_tenant_admin_creates_subscription_and_gets_the_secret_once(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, secret = webhook_subscription_create(
        actor=admin,
        tenant=acme,
        url="http://127.0.0.1:9/hook?token=receiver-credential",
        event_types=["case.opened", "alert.raised", "case.opened"],
        description="  ITSM  ",
    )
    stored = WebhookSubscription.objects.for_tenant(acme).get(pk=subscription.pk)
    assert stored.secret == secret and len(secret) >= 43  # 32 random bytes, url-safe base64
    assert stored.event_types == ["alert.raised", "case.opened"]
    assert stored.description == "ITSM" and stored.is_active and stored.created_by == admin
    [event] = audit_of(subscription, "webhook.subscription_created")
    text = json.dumps(event.data) + event.target_repr
    assert secret not in text and "receiver-credential" not in text
    assert event.data["origin"] == "http://127.0.0.1:9"
    assert event.data["event_types"] == ["alert.raised", "case.opened"]


def test_two_subscriptions_get_different_secrets(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    assert (
        subscribe(acme, URL, ["case.opened"], admin=admin)[1]
        != (subscribe(acme, URL, ["case.opened"], admin=admin)[1])
    )


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://hooks.example.test/x", "webhook.url_invalid"),
        ("https://user:pass@hooks.example.test/x", "webhook.url_invalid"),
        ("https:///nohost", "webhook.url_invalid"),
        ("https://hooks.example.test/a b", "webhook.url_invalid"),
        ("", "webhook.url_invalid"),
    ],
)
def test_malformed_urls_are_refused(acme, url, code):
    with pytest.raises(InvalidInput) as refused:
        subscribe(acme, url, ["case.opened"])
    assert refused.value.code == code and "url" in refused.value.field_errors
    assert not WebhookSubscription.objects.for_tenant(acme).exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # public, but not https
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://no-such-host.invalid/hook",
    ],
)
def test_private_or_plain_http_targets_are_refused_in_production_mode(acme, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(InvalidInput) as refused:
        subscribe(acme, url, ["case.opened"])
    assert refused.value.code == "webhook.url_not_allowed"
    assert "url" in refused.value.field_errors


def test_public_https_target_is_accepted_in_production_mode(acme, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    subscription, _ = subscribe(acme, "https://93.184.215.14/hook", ["case.opened"])
    assert subscription.pk is not None


@pytest.mark.parametrize("event_types", [[], ["case.opened", "case.exploded"], "case.opened"])
def test_unknown_or_missing_event_types_are_refused(acme, event_types):
    with pytest.raises(InvalidInput) as refused:
        subscribe(acme, URL, event_types)
    assert refused.value.code == "webhook.event_type_unknown"
    assert "event_types" in refused.value.field_errors


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER])
def test_staff_other_than_tenant_admin_cannot_manage_webhooks(acme, role):
    with pytest.raises(PolicyDenied) as refused:
        subscribe(acme, URL, ["case.opened"], admin=staff(role, tenant=acme))
    assert refused.value.code == "role.required"
    assert not WebhookSubscription.objects.for_tenant(acme).exists()


def test_tenant_admin_of_another_tenant_cannot_subscribe_here(acme, globex):
    with pytest.raises(PolicyDenied) as refused:
        subscribe(acme, URL, ["case.opened"], admin=staff(Role.TENANT_ADMIN, tenant=globex))
    assert refused.value.code == "tenant.no_access"


def test_provider_staff_through_a_grant_cannot_manage_webhooks(acme, deskco):
    active_grant(deskco, acme, roles=(Role.AGENT, Role.SUPERVISOR))
    msp_user = make_user()
    member(msp_user, Role.SUPERVISOR, provider=deskco)
    with pytest.raises(PolicyDenied) as refused:
        subscribe(acme, URL, ["case.opened"], admin=msp_user)
    assert refused.value.code == "webhook.not_delegable"


def test_key_without_webhooks_scope_is_refused(acme):
    principal = key_principal(acme, [Scope.CASES_READ, Scope.EVENTS_INGEST])
    with pytest.raises(PolicyDenied) as refused:
        subscribe(acme, URL, ["case.opened"], admin=principal)
    assert refused.value.code == "auth.scope_missing"


def test_key_with_webhooks_scope_subscribes_as_an_integration(acme):
    principal = key_principal(acme, [Scope.WEBHOOKS_MANAGE])
    subscription, _ = subscribe(acme, URL, ["alert.raised"], admin=principal)
    [event] = audit_of(subscription, "webhook.subscription_created")
    assert event.actor_type == "integration" and event.actor_id == str(principal.pk)


def test_key_of_another_tenant_cannot_subscribe_here(acme, globex):
    principal = key_principal(globex, [Scope.WEBHOOKS_MANAGE])
    with pytest.raises(PolicyDenied) as refused:
        subscribe(acme, URL, ["case.opened"], admin=principal)
    assert refused.value.code == "tenant.no_access"


def test_another_tenants_subscription_is_not_found(acme, globex):
    theirs, _ = subscribe(globex, URL, ["case.opened"])
    mine, _ = subscribe(acme, URL, ["case.opened"])
    assert webhook_subscription_get_visible(tenant=acme, pk=mine.pk) == mine
    with pytest.raises(CrossTenantNotFound) as missing:
        webhook_subscription_get_visible(tenant=acme, pk=theirs.pk)
    assert missing.value.model_label == "integrations.WebhookSubscription"
    assert list(webhook_subscription_list(tenant=acme)) == [mine]
    with pytest.raises(CrossTenantNotFound):
        webhook_delivery_list(tenant=acme, subscription=theirs)


def test_update_changes_only_what_was_given_and_is_audited(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, secret = subscribe(acme, URL, ["case.opened"], admin=admin)
    updated = webhook_subscription_update(
        actor=admin, subscription=subscription, event_types=["alert.raised"], is_active=False
    )
    assert updated.event_types == ["alert.raised"] and updated.is_active is False
    assert updated.url == URL and updated.secret == secret
    [event] = audit_of(subscription, "webhook.subscription_updated")
    assert event.data["changed"] == ["event_types", "is_active"]
    # Giving the same values again changes nothing and records nothing.
    webhook_subscription_update(actor=admin, subscription=updated, is_active=False)
    assert len(audit_of(subscription, "webhook.subscription_updated")) == 1


def test_update_checks_a_new_url_again(acme, settings):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, _ = subscribe(acme, "https://93.184.215.14/hook", ["case.opened"], admin=admin)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(InvalidInput) as refused:
        webhook_subscription_update(
            actor=admin, subscription=subscription, url="https://169.254.169.254/"
        )
    assert refused.value.code == "webhook.url_not_allowed"
    assert WebhookSubscription.objects.get(pk=subscription.pk).url == "https://93.184.215.14/hook"


def test_agent_cannot_update_rotate_or_delete(acme):
    subscription, _ = subscribe(acme, URL, ["case.opened"])
    agent = staff(Role.AGENT, tenant=acme)
    for call in (
        lambda: webhook_subscription_update(actor=agent, subscription=subscription, url=URL),
        lambda: webhook_secret_rotate(actor=agent, subscription=subscription),
        lambda: webhook_subscription_delete(actor=agent, subscription=subscription),
    ):
        with pytest.raises(PolicyDenied):
            call()
    stored = WebhookSubscription.objects.get(pk=subscription.pk)
    assert stored.is_active and stored.deleted_at is None


def test_rotate_replaces_the_secret_and_returns_it(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, old = subscribe(acme, URL, ["case.opened"], admin=admin)
    new = webhook_secret_rotate(actor=admin, subscription=subscription)
    assert new != old and WebhookSubscription.objects.get(pk=subscription.pk).secret == new
    [event] = audit_of(subscription, "webhook.subscription_secret_rotated")
    assert new not in json.dumps(event.data) and old not in json.dumps(event.data)


def test_delete_hides_the_subscription_wipes_its_secret_and_drops_pending(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, _ = subscribe(acme, URL, ["alert.raised"], admin=admin)
    emit(acme)
    [delivery] = WebhookDelivery.objects.for_tenant(acme).filter(subscription=subscription)
    webhook_subscription_delete(actor=admin, subscription=subscription)
    stored = WebhookSubscription.objects.get(pk=subscription.pk)
    assert stored.secret == "" and not stored.is_active and stored.deleted_at is not None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD
    with pytest.raises(CrossTenantNotFound):
        webhook_subscription_get_visible(tenant=acme, pk=subscription.pk)
    [event] = audit_of(subscription, "webhook.subscription_deleted")
    assert event.data["pending_dropped"] == 1
    # A later event no longer makes deliveries for it, and it cannot be changed any more.
    emit(acme)
    assert WebhookDelivery.objects.for_tenant(acme).filter(subscription=subscription).count() == 1
    with pytest.raises(InvalidInput) as refused:
        webhook_secret_rotate(actor=admin, subscription=subscription)
    assert refused.value.code == "webhook.deleted"


def test_field_diffs_underneath_never_hold_the_secret_or_the_url(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    subscription, secret = subscribe(acme, f"{URL}?token=receiver-credential", ["case.opened"])
    rotated = webhook_secret_rotate(actor=admin, subscription=subscription)
    webhook_subscription_update(actor=admin, subscription=subscription, url=f"{URL}?token=other")
    webhook_subscription_delete(actor=admin, subscription=subscription)
    entries = LogEntry.objects.filter(object_pk=str(subscription.pk))
    assert entries.exists()
    text = " ".join(json.dumps(entry.changes) for entry in entries)
    for leaked in (secret, rotated, "receiver-credential", "token=other"):
        assert leaked not in text
