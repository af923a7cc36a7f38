"""Input and output shapes of the tenancy API (keys and delegation grants)."""

from __future__ import annotations

from rest_framework import serializers

from ..choices import PrincipalKind, Scope
from ..models import ApiKey, DelegationGrant


class ApiKeyOutput(serializers.ModelSerializer):
    kind = serializers.CharField(source="principal.kind", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "kind",
            "prefix",
            "scopes",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_by",
            "created_at",
        ]


class ApiKeyIssuedOutput(ApiKeyOutput):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "token"]


class ApiKeyCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(
        choices=[PrincipalKind.INTEGRATION, PrincipalKind.AI_ASSISTANT],
        default=PrincipalKind.INTEGRATION,
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), min_length=1, max_length=20
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class GrantOutput(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider.slug", read_only=True)
    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    approved_by = serializers.CharField(
        source="approved_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = DelegationGrant
        fields = [
            "id",
            "provider",
            "tenant",
            "allowed_roles",
            "allowed_tiers",
            "allowed_case_types",
            "valid_from",
            "valid_until",
            "status",
            "requested_by",
            "approved_by",
            "approved_at",
            "revoked_at",
            "revoke_reason",
            "created_at",
        ]
