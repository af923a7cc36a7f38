"""Input and output shapes of the tenancy API (keys, delegation grants, alert routes)."""

from __future__ import annotations

from rest_framework import serializers

from ..choices import PrincipalKind, RouteKind, Scope
from ..models import AlertRoute, ApiKey, DelegationGrant
from ..routes import route_shown_target


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


class AlertRouteOutput(serializers.ModelSerializer):
    """A route as its readers see it: a webhook's origin only (its URL is a credential)."""

    target = serializers.SerializerMethodField(help_text="An address, or a URL's origin.")
    requested_by = serializers.CharField(
        source="requested_by.username", default=None, allow_null=True
    )
    approved_by = serializers.CharField(
        source="approved_by.username", default=None, allow_null=True
    )
    removal_requested_by = serializers.CharField(
        source="removal_requested_by.username", default=None, allow_null=True
    )
    decided_by = serializers.CharField(source="decided_by.username", default=None, allow_null=True)

    class Meta:
        model = AlertRoute
        fields = [
            "id",
            "kind",
            "target",
            "label",
            "status",
            "requested_by",
            "requested_at",
            "approved_by",
            "approved_at",
            "removal_requested_by",
            "removal_requested_at",
            "decided_by",
            "decided_at",
            "reason",
        ]

    def get_target(self, route: AlertRoute) -> str:
        return route_shown_target(route)


class AlertRouteApprovedOutput(AlertRouteOutput):
    secret = serializers.CharField(
        help_text="A newly approved webhook route's signing key, shown only in this answer."
    )

    class Meta(AlertRouteOutput.Meta):
        fields = [*AlertRouteOutput.Meta.fields, "secret"]


class AlertRouteInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RouteKind.choices)
    target = serializers.CharField(
        max_length=2000, help_text="An email address, or the https URL of the webhook."
    )
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class RouteReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why, in at least 10 characters.")


class RouteWithdrawInput(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class StepUpInput(serializers.Serializer):
    otp = serializers.RegexField(
        r"^\d{6,8}$", help_text="A fresh code from your authenticator app (step-up)."
    )


class IncidentStateOutput(serializers.Serializer):
    ai_off = serializers.BooleanField()
    ai_changed_by = serializers.CharField(
        source="ai_changed_by.username", default=None, allow_null=True
    )
    ai_changed_at = serializers.DateTimeField(allow_null=True)
    frozen = serializers.BooleanField()
    frozen_by = serializers.CharField(source="frozen_by.username", default=None, allow_null=True)
    frozen_at = serializers.DateTimeField(allow_null=True)
    frozen_reason = serializers.CharField()


class IncidentSwitchInput(StepUpInput):
    switch = serializers.ChoiceField(
        choices=["ai_off", "ai_on", "freeze", "unfreeze"],
        help_text="AI assistance off or on; recoveries frozen, or the freeze lifted (by a "
        "second person).",
    )
    reason = serializers.CharField(max_length=300, help_text="Why, in at least 10 characters.")
