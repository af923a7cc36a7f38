"""Input and output shapes of webhooks and ingested events."""

from __future__ import annotations

from rest_framework import serializers

from ..choices import IngestEventType, WebhookEventType
from ..models import IngestedEvent, WebhookDelivery, WebhookDeliveryAttempt, WebhookSubscription


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
