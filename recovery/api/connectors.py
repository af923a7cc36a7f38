"""The tenant's connector over the API, under dual control (R-27).

- `connector/`: the configuration in force and the pending change with its diff (GET); a
  tenant_admin proposes a change (POST).
- `connector/changes/<id>/approve/`: a second tenant_admin applies it with a fresh step-up.
- `connector/changes/<id>/reject/`, `…/withdraw/`: another admin turns it down; its requester
  takes it back.
- `connector/test/`: test the connection of the configuration in force or a pending change.

Settings appear only as `settings_summary` (no secret, no URL path). Changes are for people
only (no API key, no AI assistant); a key with `policy:read` reads the summary.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView
from tenants.api.serializers import StepUpInput
from tenants.choices import Scope, StaffScope
from tenants.models import ApiKey
from tenants.policies import enforce
from tenants.stepup import step_up_verify

from ..connectors.change_selectors import connector_change_get_visible, connector_change_pending
from ..connectors.models import ConnectorChange
from ..connectors.policies import can_read_connector
from ..connectors.selectors import connector_config_get
from ..connectors.services import (
    connector_change_approve,
    connector_change_reject,
    connector_change_request,
    connector_change_withdraw,
    connector_test,
)
from ..connectors.summary import summary_diff
from . import serializers as s
from .views import IDEMPOTENCY_KEY


def _change(request: Request, change_id: int) -> ConnectorChange:
    return connector_change_get_visible(tenant=request.tenant, pk=change_id)


class ConnectorApi(TenantApiView):
    scopes = {"GET": Scope.POLICY_READ, "POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="connector_retrieve",
        summary="The connector in force and the change waiting for a second tenant admin",
        responses=s.ConnectorStateOutput,
    )
    def get(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiKey):  # a key reads with its policy:read scope
            enforce(can_read_connector(request.tenant_access))
        config = connector_config_get(tenant=request.tenant)
        pending = connector_change_pending(tenant=request.tenant)
        diff = []
        if pending is not None:
            current = (config.kind, config.settings, config.is_active) if config else None
            proposed = (pending.kind, pending.settings, pending.is_active)
            diff = [row.as_dict() for row in summary_diff(current, proposed)]
        return Response(
            {
                "current": s.ConnectorConfigOutput(config).data if config else None,
                "pending": s.ConnectorChangeOutput(pending).data if pending else None,
                "diff": diff,
            }
        )

    @extend_schema(
        operation_id="connector_change_request",
        summary="Propose a connector configuration (a second tenant admin approves it)",
        request=s.ConnectorChangeInput,
        responses={201: s.ConnectorChangeOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        data = s.ConnectorChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = connector_change_request(
            actor=request.user, tenant=request.tenant, **data.validated_data
        )
        return Response(s.ConnectorChangeOutput(change).data, status=status.HTTP_201_CREATED)


class ConnectorChangeApproveApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="connector_change_approve",
        summary="Apply a pending connector change (a second tenant admin, with step-up)",
        request=StepUpInput,
        responses=s.ConnectorChangeOutput,
    )
    def post(self, request: Request, change_id: int) -> Response:
        data = StepUpInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = _change(request, change_id)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
        change = connector_change_approve(actor=request.user, change=change, step_up=proof)
        return Response(s.ConnectorChangeOutput(change).data)


class ConnectorChangeRejectApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="connector_change_reject",
        summary="Turn down a pending connector change (another tenant admin); nothing applies",
        request=s.ConnectorRejectInput,
        responses=s.ConnectorChangeOutput,
    )
    def post(self, request: Request, change_id: int) -> Response:
        data = s.ConnectorRejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = connector_change_reject(
            actor=request.user, change=_change(request, change_id), **data.validated_data
        )
        return Response(s.ConnectorChangeOutput(change).data)


class ConnectorChangeWithdrawApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="connector_change_withdraw",
        summary="Take back your own pending connector change",
        request=s.ConnectorWithdrawInput,
        responses=s.ConnectorChangeOutput,
    )
    def post(self, request: Request, change_id: int) -> Response:
        data = s.ConnectorWithdrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = connector_change_withdraw(
            actor=request.user, change=_change(request, change_id), **data.validated_data
        )
        return Response(s.ConnectorChangeOutput(change).data)


class ConnectorTestApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="connector_test",
        summary="Test the connection of the connector in force or of a pending change (audited)",
        request=s.ConnectorTestInput,
        responses=s.ConnectorTestOutput,
    )
    def post(self, request: Request) -> Response:
        data = s.ConnectorTestInput(data=request.data)
        data.is_valid(raise_exception=True)
        change_id = data.validated_data.get("change")
        change = _change(request, change_id) if change_id else None
        health = connector_test(actor=request.user, tenant=request.tenant, change=change)
        return Response(
            {
                "ok": health.ok,
                "detail": health.detail,
                "configuration": "pending" if change else "active",
                "change": change.pk if change else None,
            }
        )
