"""Webhooks out (subscriptions, an outbox of deliveries and their attempt log) and events in."""

import uuid

from auditlog.registry import auditlog
from django.db import models
from django.db.models import Q

from audit.models import ChainCursor
from recovery.addresses import url_origin
from tenants.querysets import TenantOwnedManager

from .choices import DeliveryKind, DeliveryStatus, IngestEventType, WebhookEventType
from .siem.choices import SiemFormat


class WebhookSubscription(models.Model):
    """A tenant's endpoint for signed event notifications.

    The secret is kept in clear because every delivery is signed with it (HMAC); it is shown
    to the tenant_admin once, never logged, and wiped when the subscription is deleted.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(
        default=list, help_text=f"Event types to send, from {', '.join(WebhookEventType.values)}."
    )
    secret = models.CharField(max_length=128, help_text="HMAC-SHA256 signing key.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"webhook {self.pk} → {url_origin(self.url)}"


class WebhookDelivery(models.Model):
    """One event for one subscription: the outbox row, derived from the committed event.

    `payload` is the body that is sent, serialised canonically (sorted keys, no spaces) on each
    attempt, so every retry sends the same bytes. While an attempt runs, `next_attempt_at` is
    pushed forward as a lease so no other worker takes the row.

    A `connector` row is a recovery connector's request to the tenant's automation
    (recovery.connectors.webhook): no subscription or audit event, a `request_key` that makes
    it once per case and operation, and its URL and signing key read from the tenant's
    connector configuration at each attempt. It is sent, retried and logged like any other.

    A `route` row is an alert for one of the tenant's alert routes (`integrations.routes`):
    its payload is the message in the route's format (an email's subject and body, a Slack or
    Teams card, or the signed webhook body), and its target is read from the route at each
    attempt, so a route removed meanwhile is not sent to.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=DeliveryKind.choices, default=DeliveryKind.EVENT)
    subscription = models.ForeignKey(
        WebhookSubscription,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    route = models.ForeignKey(
        "tenants.AlertRoute",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The alert route of a `route` row.",
    )
    event_type = models.CharField(max_length=64, choices=WebhookEventType.choices)
    audit_event = models.ForeignKey(
        "audit.AuditEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    audit_seq = models.PositiveBigIntegerField(
        help_text="The event's seq in the tenant's chain (0 for a connector request)."
    )
    request_key = models.CharField(
        max_length=200, blank=True, help_text="A connector request's idempotency key."
    )
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "audit_event"], name="webhook_delivery_once_per_event"
            ),
            models.UniqueConstraint(
                fields=["route", "audit_event"], name="webhook_delivery_once_per_route_event"
            ),
            models.UniqueConstraint(
                fields=["tenant", "request_key"],
                condition=Q(kind=DeliveryKind.CONNECTOR),
                name="webhook_delivery_connector_request_once",
            ),
            models.CheckConstraint(
                condition=Q(
                    kind=DeliveryKind.EVENT,
                    subscription__isnull=False,
                    route__isnull=True,
                    audit_event__isnull=False,
                )
                | Q(kind=DeliveryKind.CONNECTOR, subscription__isnull=True, route__isnull=True)
                & ~Q(request_key="")
                | Q(
                    kind=DeliveryKind.ROUTE,
                    route__isnull=False,
                    subscription__isnull=True,
                    audit_event__isnull=False,
                ),
                name="webhook_delivery_kind_shape",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status=DeliveryStatus.PENDING),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["tenant", "-created_at"], name="webhook_delivery_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} delivery {self.pk} ({self.status})"


class WebhookCursor(ChainCursor):
    """How far the tenant's committed audit chain has been turned into webhook deliveries
    (`integrations.outbox.webhooks_derive`)."""

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"webhook cursor of tenant {self.tenant_id} at seq {self.seq}"


class WebhookDeliveryAttempt(models.Model):
    """The delivery log: one row per HTTP attempt, whatever its outcome."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"


class IngestedEvent(models.Model):
    """An identity or security event about a protected account, sent by an integration."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="+"
    )
    event_type = models.CharField(max_length=32, choices=IngestEventType.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=100, blank=True, help_text="Sending system, e.g. entra.")
    external_id = models.CharField(
        max_length=200, blank=True, help_text="The sender's id of the event; repeats are ignored."
    )
    data = models.JSONField(default=dict)
    received_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "external_id"],
                condition=~Q(external_id=""),
                name="ingested_event_unique_external_id",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "account", "occurred_at"], name="ingested_event_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} on {self.account_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


# Field diffs underneath the audit trail. Neither the signing secret nor the URL (whose path or
# query may hold the receiver's own token) is written there; our events carry its origin and hash.
auditlog.register(WebhookSubscription, exclude_fields=["secret", "url", "updated_at"])


class SiemDestination(models.Model):
    """The tenant's syslog collector (one per tenant): every event of its chain is sent there.

    TLS is mandatory: the collector's certificate must chain to `ca_pem` and name `host`. The
    delivery fields are the stream's own state (`integrations.siem.stream`): consecutive failed
    attempts, the last error, and when the next attempt is due (exponential backoff).
    """

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    host = models.CharField(max_length=253, help_text="DNS name or IP address of the collector.")
    port = models.PositiveIntegerField(help_text="TCP port of its syslog-over-TLS listener.")
    format = models.CharField(max_length=8, choices=SiemFormat.choices)
    ca_pem = models.TextField(
        help_text="PEM CA certificate(s) the collector's certificate must chain to."
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    failures = models.PositiveIntegerField(
        default=0, help_text="Failed attempts since the last one that got through."
    )
    failing_since = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="While failing: no attempt before this time."
    )
    last_error = models.CharField(max_length=500, blank=True)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"SIEM destination of tenant {self.tenant_id}: {self.host}:{self.port}"


class SiemCursor(ChainCursor):
    """How far the tenant's committed audit chain has reached its SIEM collector
    (`integrations.siem.stream.siem_stream`)."""

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"SIEM cursor of tenant {self.tenant_id} at seq {self.seq}"
