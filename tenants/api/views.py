"""Tenancy API views: the tenant's API keys (staff only), delegation grants and alert routes."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView

from ..apikeys import apikey_create, apikey_revoke
from ..choices import Scope, StaffScope
from ..incident import incident_state, incident_switch, may_control
from ..models import AlertRoute, DelegationGrant, ServiceProvider
from ..policies import can_administer_tenant, can_view_grants, enforce
from ..rls import system_scope
from ..routes import (
    can_read_routes,
    route_approve,
    route_get_visible,
    route_list,
    route_propose,
    route_reject,
    route_removal_propose,
    route_withdraw,
)
from ..selectors import (
    apikey_get_visible,
    apikey_list,
    grant_get_visible,
    grant_list,
    provider_grant_list,
)
from ..stepup import step_up_verify
from . import serializers as s


@extend_schema_view(
    get=extend_schema(operation_id="api_keys_list", summary="The tenant's API keys (no secrets)")
)
class ApiKeyListApi(TenantListApiView):
    """Keys are issued and revoked by the tenant's own admins, never by another key."""

    scopes = {"GET": StaffScope.KEYS_MANAGE, "POST": StaffScope.KEYS_MANAGE}
    serializer_class = s.ApiKeyOutput

    def list_queryset(self, tenant):
        return apikey_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        enforce(can_administer_tenant(request.tenant_access))

    @extend_schema(
        operation_id="api_keys_create",
        summary="Issue a key for an integration or AI assistant; the token is shown once",
        request=s.ApiKeyCreateInput,
        responses={201: s.ApiKeyIssuedOutput},
    )
    def post(self, request: Request) -> Response:
        data = s.ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = apikey_create(actor=request.user, tenant=request.tenant, **data.validated_data)
        body = s.ApiKeyOutput(issued.key).data
        body["token"] = issued.token
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(TenantApiView):
    scopes = {"GET": StaffScope.KEYS_MANAGE, "DELETE": StaffScope.KEYS_MANAGE}

    @extend_schema(operation_id="api_keys_retrieve", responses=s.ApiKeyOutput)
    def get(self, request: Request, key_id: int) -> Response:
        enforce(can_administer_tenant(request.tenant_access))
        return Response(s.ApiKeyOutput(apikey_get_visible(tenant=request.tenant, pk=key_id)).data)

    @extend_schema(
        operation_id="api_keys_revoke",
        summary="Revoke a key at once",
        request=None,
        responses={200: s.ApiKeyOutput},
    )
    def delete(self, request: Request, key_id: int) -> Response:
        key = apikey_revoke(
            actor=request.user, key=apikey_get_visible(tenant=request.tenant, pk=key_id)
        )
        return Response(s.ApiKeyOutput(key).data)


def _require_grant_reader(request: Request) -> None:
    if request.user.is_human:
        enforce(can_view_grants(request.tenant_access))


@extend_schema_view(
    get=extend_schema(operation_id="grants_list", summary="Delegation grants to service providers")
)
class GrantListApi(TenantListApiView):
    scopes = {"GET": Scope.GRANTS_READ}
    serializer_class = s.GrantOutput

    def list_queryset(self, tenant):
        return grant_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        _require_grant_reader(request)


class GrantDetailApi(TenantApiView):
    scopes = {"GET": Scope.GRANTS_READ}

    @extend_schema(operation_id="grants_retrieve", responses=s.GrantOutput)
    def get(self, request: Request, grant_id: int) -> Response:
        _require_grant_reader(request)
        return Response(s.GrantOutput(grant_get_visible(tenant=request.tenant, pk=grant_id)).data)


@extend_schema_view(
    get=extend_schema(
        operation_id="provider_grants_list",
        summary="The grants a service provider holds or asked for (its staff only)",
    )
)
class ProviderGrantListApi(ListModelMixin, GenericAPIView):
    """A service provider's own view of its grants: its staff, signed in (no API keys)."""

    serializer_class = s.GrantOutput
    metadata_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no provider
            return DelegationGrant.objects.none()
        return provider_grant_list(provider=self.provider)

    def get(self, request: Request, provider: str) -> Response:
        if not request.user.is_human:
            raise Http404("No such provider.")
        self.provider = ServiceProvider.objects.filter(
            slug=provider,
            is_active=True,
            memberships__user=request.user,
            memberships__is_active=True,
        ).first()
        if self.provider is None:
            raise Http404("No such provider.")
        # Grants span the provider's client tenants; the query itself is bound to the provider.
        with system_scope():
            return self.list(request)


# --- alert routes (dual control): tenants.routes ---------------------------------------------


def _require_route_reader(request: Request) -> None:
    if request.user.is_human:  # a key reads with its policy:read scope
        enforce(can_read_routes(request.tenant_access))


@extend_schema_view(
    get=extend_schema(
        operation_id="alert_routes_list",
        summary="Where the tenant's alerts go: security contacts, webhooks, Slack and Teams",
    )
)
class AlertRouteListApi(TenantListApiView):
    scopes = {"GET": Scope.POLICY_READ, "POST": StaffScope.SETTINGS_WRITE}
    serializer_class = s.AlertRouteOutput

    def list_queryset(self, tenant):
        return route_list(tenant)

    def check_read(self, request: Request) -> None:
        _require_route_reader(request)

    @extend_schema(
        operation_id="alert_routes_propose",
        summary="Propose a route (a second tenant admin approves it)",
        request=s.AlertRouteInput,
        responses={201: s.AlertRouteOutput},
    )
    def post(self, request: Request) -> Response:
        data = s.AlertRouteInput(data=request.data)
        data.is_valid(raise_exception=True)
        route = route_propose(actor=request.user, tenant=request.tenant, **data.validated_data)
        return Response(s.AlertRouteOutput(route).data, status=status.HTTP_201_CREATED)


def _route(request: Request, route_id: int) -> AlertRoute:
    return route_get_visible(tenant=request.tenant, pk=route_id)


class AlertRouteApproveApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="alert_routes_approve",
        summary="Approve what is waiting on a route, adding or removing it (a second tenant "
        "admin, with step-up)",
        request=s.StepUpInput,
        responses=s.AlertRouteApprovedOutput,
    )
    def post(self, request: Request, route_id: int) -> Response:
        data = s.StepUpInput(data=request.data)
        data.is_valid(raise_exception=True)
        route = _route(request, route_id)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
        route, secret = route_approve(actor=request.user, route=route, step_up=proof)
        return Response({**s.AlertRouteOutput(route).data, "secret": secret})


class AlertRouteRemoveApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="alert_routes_remove",
        summary="Propose removing an active route (it keeps sending until a second admin approves)",
        request=s.RouteReasonInput,
        responses=s.AlertRouteOutput,
    )
    def post(self, request: Request, route_id: int) -> Response:
        data = s.RouteReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        route = route_removal_propose(
            actor=request.user, route=_route(request, route_id), **data.validated_data
        )
        return Response(s.AlertRouteOutput(route).data)


class AlertRouteRejectApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="alert_routes_reject",
        summary="Turn down a proposed route or removal (another tenant admin)",
        request=s.RouteReasonInput,
        responses=s.AlertRouteOutput,
    )
    def post(self, request: Request, route_id: int) -> Response:
        data = s.RouteReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        route = route_reject(
            actor=request.user, route=_route(request, route_id), **data.validated_data
        )
        return Response(s.AlertRouteOutput(route).data)


class AlertRouteWithdrawApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="alert_routes_withdraw",
        summary="Take back your own proposed route or removal",
        request=s.RouteWithdrawInput,
        responses=s.AlertRouteOutput,
    )
    def post(self, request: Request, route_id: int) -> Response:
        data = s.RouteWithdrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        route = route_withdraw(
            actor=request.user, route=_route(request, route_id), **data.validated_data
        )
        return Response(s.AlertRouteOutput(route).data)


# --- incident switches: tenants.incident ----------------------------------------------


class IncidentApi(TenantApiView):
    scopes = {"GET": StaffScope.SECURITY_RESPOND, "POST": StaffScope.SECURITY_RESPOND}

    @extend_schema(
        operation_id="incident_retrieve",
        summary="The tenant's incident switches: AI assistance and the recovery freeze",
        responses=s.IncidentStateOutput,
    )
    def get(self, request: Request) -> Response:
        enforce(may_control(request.user, request.tenant))
        return Response(s.IncidentStateOutput(incident_state(request.tenant)).data)

    @extend_schema(
        operation_id="incident_switch",
        summary="Flip one incident switch, with a reason and a fresh step-up (recorded, and "
        "e-mailed to the tenant admins)",
        request=s.IncidentSwitchInput,
        responses=s.IncidentStateOutput,
    )
    def post(self, request: Request) -> Response:
        enforce(may_control(request.user, request.tenant))  # before a code is spent
        data = s.IncidentSwitchInput(data=request.data)
        data.is_valid(raise_exception=True)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
        control = incident_switch(
            actor=request.user,
            tenant=request.tenant,
            switch=data.validated_data["switch"],
            reason=data.validated_data["reason"],
            step_up=proof,
        )
        return Response(s.IncidentStateOutput(control).data)
