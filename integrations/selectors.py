"""Reads of webhooks and ingested events, each starting from the tenant; fixed query counts."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from tenants.exceptions import CrossTenantNotFound
from tenants.models import Tenant

from .models import IngestedEvent, WebhookDelivery, WebhookDeliveryAttempt, WebhookSubscription

SUBSCRIPTION_LABEL = WebhookSubscription._meta.label
DELIVERY_LABEL = WebhookDelivery._meta.label


def webhook_subscription_list(*, tenant: Tenant) -> QuerySet[WebhookSubscription]:
    """The tenant's subscriptions (deleted ones left out), oldest first."""
    return (
        WebhookSubscription.objects.for_tenant(tenant)
        .filter(deleted_at__isnull=True)
        .select_related("created_by")
        .order_by("created_at", "pk")
    )


def webhook_subscription_get_visible(*, tenant: Tenant, pk: int) -> WebhookSubscription:
    """One subscription of `tenant`; another tenant's id is the same 404 as a missing one."""
    subscription = webhook_subscription_list(tenant=tenant).filter(pk=pk).first()
    if subscription is None:
        raise CrossTenantNotFound(SUBSCRIPTION_LABEL, pk)
    return subscription


def webhook_delivery_list(
    *, tenant: Tenant, subscription: WebhookSubscription | None = None
) -> QuerySet[WebhookDelivery]:
    """The tenant's deliveries, newest first; only those of `subscription` when given."""
    deliveries = WebhookDelivery.objects.for_tenant(tenant)
    if subscription is not None:
        if subscription.tenant_id != tenant.pk:
            raise CrossTenantNotFound(SUBSCRIPTION_LABEL, subscription.pk)
        deliveries = deliveries.filter(subscription=subscription)
    return deliveries.order_by("-created_at", "-pk")


def webhook_delivery_get_visible(*, tenant: Tenant, pk: object) -> WebhookDelivery:
    """One delivery of `tenant`, or the 404 a missing one gives."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        raise CrossTenantNotFound(DELIVERY_LABEL, pk) from None
    delivery = webhook_delivery_list(tenant=tenant).filter(pk=pk).first()
    if delivery is None:
        raise CrossTenantNotFound(DELIVERY_LABEL, pk)
    return delivery


def webhook_delivery_attempt_list(
    *, tenant: Tenant, delivery: WebhookDelivery
) -> QuerySet[WebhookDeliveryAttempt]:
    """The delivery log of one delivery, oldest attempt first."""
    if delivery.tenant_id != tenant.pk:
        raise CrossTenantNotFound(DELIVERY_LABEL, delivery.pk)
    return (
        WebhookDeliveryAttempt.objects.for_tenant(tenant)
        .filter(delivery=delivery)
        .order_by("attempted_at", "pk")
    )


def ingested_event_list(*, tenant: Tenant) -> QuerySet[IngestedEvent]:
    """The tenant's ingested events with their accounts, newest (by occurred_at) first."""
    return (
        IngestedEvent.objects.for_tenant(tenant)
        .select_related("account")
        .order_by("-occurred_at", "-pk")
    )
