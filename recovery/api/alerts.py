"""Alerts as people work them, over the API (issue 16 part 4): the de-duplicated queue,
acknowledging and closing. The raw stream of raises stays at `alerts/` (audit.api).

- `alerts/queue/` (`?status=`, repeatable; `?kind=`): the tenant's alerts, newest first, each
  with its count, due time and who worked it;
- `alerts/queue/<id>/acknowledge/`, `…/resolve/` (`outcome`: resolved or false_positive, and a
  reason): a security officer of the tenant, a person (no key, no AI assistant).
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView
from tenants.choices import Scope, StaffScope

from ..detection.alerts import OUTCOMES, alert_acknowledge, alert_resolve
from ..detection.choices import AlertStatus
from ..detection.models import Alert


class AlertQueueFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    kind = django_filters.CharFilter(max_length=64)

    class Meta:
        model = Alert
        fields: list[str] = []


class AlertQueueOutput(serializers.ModelSerializer):
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", default=None, allow_null=True
    )
    resolved_by = serializers.CharField(
        source="resolved_by.username", default=None, allow_null=True
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "target_type",
            "target_id",
            "facts",
            "count",
            "first_raised_at",
            "last_raised_at",
            "due_at",
            "status",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_by",
            "resolved_at",
            "resolution",
        ]


class AlertResolveInput(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=[(o.value, o.label) for o in OUTCOMES])
    reason = serializers.CharField(max_length=300, help_text="Why, in at least 10 characters.")


@extend_schema_view(
    get=extend_schema(
        operation_id="alert_queue_list",
        summary="Alerts as people work them: de-duplicated, with a count and a due time",
    )
)
class AlertQueueApi(TenantListApiView):
    scopes = {"GET": Scope.ALERTS_READ}
    serializer_class = AlertQueueOutput
    filterset_class = AlertQueueFilter

    def list_queryset(self, tenant):
        return Alert.objects.for_tenant(tenant).select_related("acknowledged_by", "resolved_by")


class AlertAcknowledgeApi(TenantApiView):
    scopes = {"POST": StaffScope.SECURITY_RESPOND}

    @extend_schema(
        operation_id="alert_queue_acknowledge",
        summary="Acknowledge an alert (a security officer): someone is on it",
        request=None,
        responses=AlertQueueOutput,
    )
    def post(self, request: Request, alert_id: int) -> Response:
        alert = alert_acknowledge(actor=request.user, tenant=request.tenant, alert_id=alert_id)
        return Response(AlertQueueOutput(alert).data)


class AlertResolveApi(TenantApiView):
    scopes = {"POST": StaffScope.SECURITY_RESPOND}

    @extend_schema(
        operation_id="alert_queue_resolve",
        summary="Close an alert as resolved or as a false positive, saying why",
        request=AlertResolveInput,
        responses=AlertQueueOutput,
    )
    def post(self, request: Request, alert_id: int) -> Response:
        data = AlertResolveInput(data=request.data)
        data.is_valid(raise_exception=True)
        alert = alert_resolve(
            actor=request.user, tenant=request.tenant, alert_id=alert_id, **data.validated_data
        )
        return Response(AlertQueueOutput(alert).data)
