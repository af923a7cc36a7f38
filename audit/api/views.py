"""Audit API: the tenant's trail (filtered, paginated), an NDJSON export, chain status, alerts.

Every answer that reads the trail is recorded (`audit.read`, or `audit.exported` for the
export) in the handler's transaction; when that record fails the reader gets a 503
`audit.read_not_recorded` and no events (R-50).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView
from api.pagination import SequenceCursor
from tenants.choices import Scope
from tenants.models import Tenant
from tenants.policies import can_read_audit, enforce
from tenants.rls import tenant_scope

from ..exceptions import TrailReadNotRecorded
from ..integrity import untrusted_windows
from ..models import AuditEvent
from ..selectors import (
    EXPORT_FIELDS,
    alert_list,
    audit_event_list,
    chain_head,
    export_line,
    last_scheduled_verification,
    read_filters,
)
from ..services import trail_read_record
from ..verify import verify_chain
from . import serializers as s
from .filters import AlertFilter, AuditEventFilter

# Query parameters that shape the answer rather than choose events.
UNTRUSTED_HEADER = "X-Audit-Untrusted-Seqs"
NOT_FILTERS = ("cursor", "format")


class ReadNotRecorded(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = TrailReadNotRecorded.code
    default_detail = TrailReadNotRecorded.message


def _require_audit_reader(request: Request) -> None:
    if request.user.is_human:
        enforce(can_read_audit(request.tenant_access))


def _filters(request: Request) -> dict[str, list[str]]:
    return read_filters(request.query_params, leave_out=NOT_FILTERS)


def _record_read(request: Request, data: dict[str, Any], action: str = "audit.read") -> None:
    """Record this read of the trail in the handler's transaction, or refuse it (503)."""
    try:
        trail_read_record(
            reader=request.user,
            access=request.tenant_access,
            tenant=request.tenant,
            data=data,
            action=action,
        )
    except TrailReadNotRecorded as refused:
        raise ReadNotRecorded() from refused


class RecordedListMixin:
    """A list of the trail's rows whose every page is recorded as read (`read` names it)."""

    read: str

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        data = {
            "read": self.read,
            "filters": _filters(request),
            "cursor": request.query_params.get("cursor", "")[:200],
            "events": len(response.data["results"]),
        }
        _record_read(request, data)
        return response


@extend_schema_view(
    get=extend_schema(
        operation_id="audit_events_list", summary="The tenant's audit trail, filtered"
    )
)
class AuditEventListApi(RecordedListMixin, TenantListApiView):
    read = "api.events"
    scopes = {"GET": Scope.AUDIT_READ}
    serializer_class = s.AuditEventOutput
    filterset_class = AuditEventFilter
    pagination_class = SequenceCursor

    def list_queryset(self, tenant):
        return audit_event_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        _require_audit_reader(request)

    def get_serializer_context(self) -> dict[str, Any]:
        untrusted = untrusted_windows(self.request.tenant)
        return {**super().get_serializer_context(), "untrusted": untrusted}


def _ndjson(tenant: Tenant, events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    with tenant_scope([tenant.pk]):
        for values in events:
            yield export_line(values)


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
        _record_read(request, {"filters": _filters(request)}, action="audit.exported")
        # The stream reads in its own transaction, after this one has committed the record.
        rows = events.values(*EXPORT_FIELDS).iterator(chunk_size=2000)
        response = StreamingHttpResponse(
            _ndjson(request.tenant, rows), content_type="application/x-ndjson"
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = (
            f'attachment; filename="audit-{request.tenant.slug}-{stamp}.ndjson"'
        )
        # Lines carry exactly the hashed fields; the seqs a chain finding put in doubt travel
        # beside them (empty when none): "3-9,12-12".
        windows = untrusted_windows(request.tenant)
        response[UNTRUSTED_HEADER] = ",".join(f"{first}-{last}" for first, last in windows)
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
        report = verify_chain(request.tenant.pk, request.tenant.slug, incremental=True)
        last = last_scheduled_verification()
        _record_read(request, {"read": "api.verification"})
        return Response(
            {
                "chain": report.chain,
                "intact": report.intact,
                "rows": report.rows,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "untrusted": list(report.window) if report.window else None,
                "checkpoints": report.checkpoints,
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
class AlertListApi(RecordedListMixin, TenantListApiView):
    read = "api.alerts"
    scopes = {"GET": Scope.ALERTS_READ}
    serializer_class = s.AlertOutput
    filterset_class = AlertFilter
    pagination_class = SequenceCursor

    def list_queryset(self, tenant):
        return alert_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        _require_audit_reader(request)
