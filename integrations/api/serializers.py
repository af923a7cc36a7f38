"""Input and output shapes of webhooks and ingested events."""

from __future__ import annotations

from rest_framework import serializers

from ..choices import IngestEventType, WebhookEventType
from ..models import IngestedEvent, WebhookDelivery, WebhookDeliveryAttempt, WebhookSubscription
from ..siem.choices import SiemFormat
from ..siem.selectors import SiemStatus


class WebhookOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "created_at",
            "updated_at",
        ]


class WebhookCreatedOutput(WebhookOutput):
    secret = serializers.CharField(read_only=True, help_text="Shown once: sign checks use it.")

    class Meta(WebhookOutput.Meta):
        fields = [*WebhookOutput.Meta.fields, "secret"]


class WebhookCreateInput(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices), min_length=1
    )
    description = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )


class WebhookUpdateInput(serializers.Serializer):
    url = serializers.URLField(max_length=2000, required=False)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices),
        min_length=1,
        required=False,
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class WebhookAttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookDeliveryAttempt
        fields = ["number", "attempted_at", "status_code", "error", "duration_ms"]


class WebhookDeliveryOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_type",
            "audit_seq",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
        ]


class EventIngestInput(serializers.Serializer):
    event_type = serializers.ChoiceField(choices=IngestEventType.choices)
    account_external_id = serializers.CharField(max_length=200)
    occurred_at = serializers.DateTimeField()
    source = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    external_id = serializers.CharField(
        max_length=200,
        required=False,
        default="",
        allow_blank=True,
        help_text="The sender's id for the event; a repeat with the same source is ignored.",
    )
    data = serializers.DictField(help_text="Fields for the event type (see docs/api.md).")


class IngestedEventOutput(serializers.ModelSerializer):
    account_external_id = serializers.CharField(source="account.external_id", read_only=True)

    class Meta:
        model = IngestedEvent
        fields = [
            "id",
            "event_type",
            "account_external_id",
            "occurred_at",
            "received_at",
            "source",
            "external_id",
            "data",
        ]


class SiemDestinationInput(serializers.Serializer):
    host = serializers.CharField(max_length=253, help_text="DNS name or IP address.")
    port = serializers.IntegerField(min_value=1, max_value=65535)
    format = serializers.ChoiceField(choices=SiemFormat.choices)
    ca_pem = serializers.CharField(
        max_length=65536,
        trim_whitespace=False,
        help_text="PEM CA certificate(s) the collector's TLS certificate must chain to.",
    )
    enabled = serializers.BooleanField(required=False, default=True)


class SiemDestinationOutput(serializers.Serializer):
    host = serializers.CharField()
    port = serializers.IntegerField()
    format = serializers.ChoiceField(choices=SiemFormat.choices)
    enabled = serializers.BooleanField()
    ca_pem = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SiemStatusOutput(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["not_configured", "disabled", "failing", "behind", "up_to_date"]
    )
    destination = SiemDestinationOutput(allow_null=True)
    ca_sha256 = serializers.ListField(child=serializers.CharField())
    head_seq = serializers.IntegerField(help_text="The seq of the tenant's newest event.")
    sent_seq = serializers.IntegerField(help_text="Every event up to this seq was delivered.")
    events_behind = serializers.IntegerField(source="behind")
    oldest_unsent_at = serializers.DateTimeField(allow_null=True)
    oldest_unsent_age_seconds = serializers.SerializerMethodField()
    failures = serializers.IntegerField(source="destination.failures", default=0)
    failing_since = serializers.DateTimeField(
        source="destination.failing_since", default=None, allow_null=True
    )
    last_error = serializers.CharField(source="destination.last_error", default="")
    last_attempt_at = serializers.DateTimeField(
        source="destination.last_attempt_at", default=None, allow_null=True
    )
    last_success_at = serializers.DateTimeField(
        source="destination.last_success_at", default=None, allow_null=True
    )
    next_attempt_at = serializers.DateTimeField(
        source="destination.next_attempt_at", default=None, allow_null=True
    )

    def get_oldest_unsent_age_seconds(self, status: SiemStatus) -> float | None:
        age = status.oldest_unsent_age
        return round(age.total_seconds(), 3) if age is not None else None
