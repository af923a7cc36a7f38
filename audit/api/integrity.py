"""Audit API: the integrity state of the tenant's chain and of the platform chain (issue 15
part 3). Read-only: acknowledging a finding needs a person's passkey step-up and is done in
the console (audit/integrity_views.py). The read is recorded like every read of the trail."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView
from tenants.choices import Scope

from ..chain import chain_key
from ..integrity import PLATFORM
from ..models import ChainIntegrity
from .views import _record_read, _require_audit_reader


class ChainIntegrityOutput(serializers.Serializer):
    """One chain's finding; null when the verifier never found anything wrong with it."""

    failing = serializers.BooleanField(
        help_text="Not acknowledged: T1/T2 executions and policy activations are refused."
    )
    broken = serializers.BooleanField(help_text="What the last verification said.")
    checked_at = serializers.DateTimeField()
    first_bad_seq = serializers.IntegerField()
    reason = serializers.CharField()
    untrusted = serializers.ListField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="First and last seq of the rows the finding puts in doubt.",
    )
    detected_at = serializers.DateTimeField(allow_null=True)
    finding_event_seq = serializers.IntegerField(
        allow_null=True, help_text="Platform seq of the finding's audit.integrity_violation."
    )
    paged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_event_seq = serializers.IntegerField(allow_null=True)


class AuditIntegrityOutput(serializers.Serializer):
    tenant = ChainIntegrityOutput(allow_null=True)
    platform = ChainIntegrityOutput(allow_null=True)


def _state_data(state: ChainIntegrity | None) -> dict[str, Any] | None:
    if state is None or state.first_bad_seq is None:
        return None
    acknowledged = not state.failing
    return {
        "failing": state.failing,
        "broken": state.broken,
        "checked_at": state.checked_at,
        "first_bad_seq": state.first_bad_seq,
        "reason": state.reason,
        "untrusted": list(state.window) if state.window else None,
        "detected_at": state.detected_at,
        "finding_event_seq": state.finding_event_seq,
        "paged_at": state.paged_at,
        "acknowledged_by": state.acknowledged_by.get_username() if acknowledged else None,
        "acknowledged_at": state.acknowledged_at if acknowledged else None,
        "acknowledged_event_seq": state.acknowledged_event_seq if acknowledged else None,
    }


class AuditIntegrityApi(TenantApiView):
    scopes = {"GET": Scope.AUDIT_READ}

    @extend_schema(
        operation_id="audit_integrity",
        summary="The integrity findings of the tenant's chain and of the platform chain",
        description="Read-only: a finding is acknowledged in the console, with a passkey.",
        responses=AuditIntegrityOutput,
    )
    def get(self, request: Request) -> Response:
        _require_audit_reader(request)
        own = chain_key(request.tenant.pk)
        states = {
            state.key: state
            for state in ChainIntegrity.objects.filter(key__in=[own, PLATFORM]).select_related(
                "acknowledged_by"
            )
        }
        _record_read(request, {"read": "api.integrity"})
        return Response(
            AuditIntegrityOutput(
                {
                    "tenant": _state_data(states.get(own)),
                    "platform": _state_data(states.get(PLATFORM)),
                }
            ).data
        )
