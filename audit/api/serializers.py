"""Output shapes of the audit API."""

from __future__ import annotations

from rest_framework import serializers

from ..models import AuditEvent


class AuditEventOutput(serializers.ModelSerializer):
    untrusted = serializers.SerializerMethodField(
        help_text="True when a chain verification put this event in doubt (docs/audit.md)."
    )

    def get_untrusted(self, event: AuditEvent) -> bool:
        windows = self.context.get("untrusted", ())
        return any(first <= event.seq <= last for first, last in windows)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "seq",
            "action",
            "actor_id",
            "actor_label",
            "actor_type",
            "actor_org",
            "target_type",
            "target_id",
            "target_repr",
            "data",
            "request_id",
            "ip",
            "created_at",
            "prev_hash",
            "hash",
            "untrusted",
        ]


class AlertOutput(serializers.ModelSerializer):
    type = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "seq",
            "type",
            "target_type",
            "target_id",
            "target_repr",
            "data",
            "created_at",
        ]

    def get_type(self, event: AuditEvent) -> str:
        return str(event.data.get("type", ""))


class ChainStatusOutput(serializers.Serializer):
    chain = serializers.CharField()
    intact = serializers.BooleanField()
    rows = serializers.IntegerField()
    first_bad_seq = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    untrusted = serializers.ListField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="First and last seq of the rows a broken chain puts in doubt; null if intact.",
    )
    checkpoints = serializers.IntegerField(
        help_text="Signed checkpoints compared with the rows (the newest one per store)."
    )
    head_seq = serializers.IntegerField()
    head_hash = serializers.CharField()
    checked_at = serializers.DateTimeField()
    last_scheduled_run_at = serializers.DateTimeField(allow_null=True)
    last_scheduled_run_broken_chains = serializers.IntegerField(allow_null=True)
