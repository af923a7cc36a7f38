"""Tenancy API views: the tenant's API keys (staff only) and delegation grants."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import STAFF_ONLY, TenantApiView

from ..apikeys import apikey_create, apikey_revoke
from ..choices import Scope
from ..models import ServiceProvider
from ..policies import can_administer_tenant, can_view_grants, enforce
from ..rls import system_scope
from ..selectors import (
    apikey_get_visible,
    apikey_list,
    grant_get_visible,
    grant_list,
    provider_grant_list,
)
from . import serializers as s


class ApiKeyListApi(TenantApiView):
    """Keys are issued and revoked by the tenant's own admins, never by another key."""

    scopes = {"GET": STAFF_ONLY, "POST": STAFF_ONLY}
    serializer_class = s.ApiKeyOutput

    def get_queryset(self):
        return apikey_list(tenant=self.request.tenant)

    @extend_schema(operation_id="api_keys_list", summary="The tenant's API keys (no secrets)")
    def get(self, request: Request) -> Response:
        enforce(can_administer_tenant(request.tenant_access))
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ApiKeyOutput(page, many=True).data)

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
    scopes = {"GET": STAFF_ONLY, "DELETE": STAFF_ONLY}

    @extend_schema(operation_id="api_keys_retrieve", responses=s.ApiKeyOutput)
    def get(self, request: Request, key_id: int) -> Response:
        enforce(can_administer_tenant(request.tenant_access))
        return Response(s.ApiKeyOutput(apikey_get_visible(tenant=request.tenant, pk=key_id)).data)

    @extend_schema(
        operation_id="api_keys_revoke",
        summary="Revoke a key at once",
        responses=s.ApiKeyOutput,
    )
    def delete(self, request: Request, key_id: int) -> Response:
        key = apikey_revoke(
            actor=request.user, key=apikey_get_visible(tenant=request.tenant, pk=key_id)
        )
        return Response(s.ApiKeyOutput(key).data)


def _require_grant_reader(request: Request) -> None:
    if request.user.is_human:
        enforce(can_view_grants(request.tenant_access))


class GrantListApi(TenantApiView):
    scopes = {"GET": Scope.GRANTS_READ}
    serializer_class = s.GrantOutput

    def get_queryset(self):
        return grant_list(tenant=self.request.tenant)

    @extend_schema(operation_id="grants_list", summary="Delegation grants to service providers")
    def get(self, request: Request) -> Response:
        _require_grant_reader(request)
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.GrantOutput(page, many=True).data)


class GrantDetailApi(TenantApiView):
    scopes = {"GET": Scope.GRANTS_READ}

    @extend_schema(operation_id="grants_retrieve", responses=s.GrantOutput)
    def get(self, request: Request, grant_id: int) -> Response:
        _require_grant_reader(request)
        return Response(s.GrantOutput(grant_get_visible(tenant=request.tenant, pk=grant_id)).data)


class ProviderGrantListApi(GenericAPIView):
    """A service provider's own view of its grants: its staff, signed in (no API keys)."""

    serializer_class = s.GrantOutput

    def get_queryset(self):
        return provider_grant_list(provider=self.provider)

    @extend_schema(
        operation_id="provider_grants_list",
        summary="The grants a service provider holds or asked for (its staff only)",
    )
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
            page = self.paginate_queryset(self.get_queryset())
            return self.get_paginated_response(s.GrantOutput(page, many=True).data)
