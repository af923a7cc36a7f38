"""Audit API: the tenant's trail (filtered, paginated), an NDJSON export, chain status, alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView
from api.pagination import SequenceCursor
from tenants.choices import Scope
from tenants.models import Tenant
from tenants.policies import can_read_audit, enforce
from tenants.rls import tenant_scope

from ..context import Actor
from ..models import AuditEvent
from ..selectors import alert_list, audit_event_list, chain_head, last_scheduled_verification
from ..services import record
from ..verify import verify_chain
from . import serializers as s
from .filters import AlertFilter, AuditEventFilter

EXPORT_FIELDS = s.AuditEventOutput.Meta.fields


def _require_audit_reader(request: Request) -> None:
    if request.user.is_human:
        enforce(can_read_audit(request.tenant_access))


@extend_schema_view(
    get=extend_schema(
        operation_id="audit_events_list", summary="The tenant's audit trail, filtered"
    )
)
class AuditEventListApi(TenantListApiView):
    scopes = {"GET": Scope.AUDIT_READ}
    serializer_class = s.AuditEventOutput
    filterset_class = AuditEventFilter
    pagination_class = SequenceCursor

    def list_queryset(self, tenant):
        return audit_event_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        _require_audit_reader(request)


def _ndjson(tenant: Tenant, events: Iterator[AuditEvent]) -> Iterator[bytes]:
    with tenant_scope([tenant.pk]):
        for values in events:
            yield json.dumps(values, cls=DjangoJSONEncoder, separators=(",", ":")).encode() + b"\n"


class AuditExportApi(TenantApiView):
    scopes = {"GET": Scope.AUDIT_READ}
    filterset_class = AuditEventFilter
    queryset = AuditEvent.objects.none()  # for the schema generator only

    @extend_schema(
        operation_id="audit_export",
        summary="Export the trail as NDJSON, oldest first, one event per line (with hashes)",
        responses={(200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR)},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        _require_audit_reader(request)
        events = self.filter_queryset(audit_event_list(tenant=request.tenant)).order_by("seq")
        filters = {k: v for k, v in request.query_params.items() if k != "format"}
        with transaction.atomic():
            record(
                action="audit.exported",
                actor=Actor.for_user(request.user, organisation=request.tenant.name),
                tenant=request.tenant,
                data={"filters": filters},
            )
        rows = events.values(*EXPORT_FIELDS).iterator(chunk_size=2000)
        response = StreamingHttpResponse(
            _ndjson(request.tenant, rows), content_type="application/x-ndjson"
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = (
            f'attachment; filename="audit-{request.tenant.slug}-{stamp}.ndjson"'
        )
        return response


class AuditVerificationApi(TenantApiView):
    scopes = {"GET": Scope.AUDIT_READ}

    @extend_schema(
        operation_id="audit_verification",
        summary="Verify the tenant's chain now; also the platform verifier's last run",
        responses=s.ChainStatusOutput,
    )
    def get(self, request: Request) -> Response:
        _require_audit_reader(request)
        head = chain_head(tenant=request.tenant)
        report = verify_chain(request.tenant.pk, request.tenant.slug)
        last = last_scheduled_verification()
        return Response(
            {
                "chain": report.chain,
                "intact": report.intact,
                "rows": report.rows,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "head_seq": head.seq if head else 0,
                "head_hash": head.hash if head else "",
                "checked_at": timezone.now(),
                "last_scheduled_run_at": last.created_at if last else None,
                "last_scheduled_run_broken_chains": last.data.get("broken") if last else None,
            }
        )


@extend_schema_view(
    get=extend_schema(operation_id="alerts_list", summary="Alerts raised for the security queue")
)
class AlertListApi(TenantListApiView):
    scopes = {"GET": Scope.ALERTS_READ}
    serializer_class = s.AlertOutput
    filterset_class = AlertFilter
    pagination_class = SequenceCursor

    def list_queryset(self, tenant):
        return alert_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        _require_audit_reader(request)
