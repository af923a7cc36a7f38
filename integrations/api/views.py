"""Webhook subscriptions (with their delivery log) and events in, under /api/v1/t/<tenant>/."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView
from api.pagination import NewestFirstCursor
from tenants.choices import Scope
from tenants.policies import enforce

from ..policies import can_ingest_events, can_manage_webhooks
from ..selectors import (
    ingested_event_list,
    webhook_delivery_list,
    webhook_subscription_get_visible,
    webhook_subscription_list,
)
from ..services import (
    event_ingest,
    webhook_secret_rotate,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)
from ..siem.policies import can_view_siem
from ..siem.selectors import siem_status
from ..siem.services import siem_destination_remove, siem_destination_set
from . import serializers as s


def _require_manager(request: Request) -> None:
    enforce(can_manage_webhooks(request.user, request.tenant_access))


@extend_schema_view(
    get=extend_schema(operation_id="webhooks_list", summary="Webhook subscriptions")
)
class WebhookListApi(TenantListApiView):
    scopes = {"GET": Scope.WEBHOOKS_MANAGE, "POST": Scope.WEBHOOKS_MANAGE}
    serializer_class = s.WebhookOutput

    def list_queryset(self, tenant):
        return webhook_subscription_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        _require_manager(request)

    @extend_schema(
        operation_id="webhooks_create",
        summary="Subscribe a URL to event types; the signing secret is shown once",
        request=s.WebhookCreateInput,
        responses={201: s.WebhookCreatedOutput},
    )
    def post(self, request: Request) -> Response:
        data = s.WebhookCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription, secret = webhook_subscription_create(
            actor=request.user, tenant=request.tenant, **data.validated_data
        )
        body = s.WebhookOutput(subscription).data
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDetailApi(TenantApiView):
    scopes = {
        "GET": Scope.WEBHOOKS_MANAGE,
        "PATCH": Scope.WEBHOOKS_MANAGE,
        "DELETE": Scope.WEBHOOKS_MANAGE,
    }

    @extend_schema(operation_id="webhooks_retrieve", responses=s.WebhookOutput)
    def get(self, request: Request, subscription_id: int) -> Response:
        _require_manager(request)
        subscription = webhook_subscription_get_visible(tenant=request.tenant, pk=subscription_id)
        return Response(s.WebhookOutput(subscription).data)

    @extend_schema(
        operation_id="webhooks_update",
        summary="Change URL, event types, description or pause it",
        request=s.WebhookUpdateInput,
        responses=s.WebhookOutput,
    )
    def patch(self, request: Request, subscription_id: int) -> Response:
        data = s.WebhookUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = webhook_subscription_update(
            actor=request.user,
            subscription=webhook_subscription_get_visible(
                tenant=request.tenant, pk=subscription_id
            ),
            **data.validated_data,
        )
        return Response(s.WebhookOutput(subscription).data)

    @extend_schema(operation_id="webhooks_delete", request=None, responses={204: None})
    def delete(self, request: Request, subscription_id: int) -> Response:
        webhook_subscription_delete(
            actor=request.user,
            subscription=webhook_subscription_get_visible(
                tenant=request.tenant, pk=subscription_id
            ),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotateApi(TenantApiView):
    scopes = {"POST": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        summary="Replace the signing secret; the new one is shown once",
        request=None,
        responses=s.WebhookCreatedOutput,
    )
    def post(self, request: Request, subscription_id: int) -> Response:
        subscription = webhook_subscription_get_visible(tenant=request.tenant, pk=subscription_id)
        secret = webhook_secret_rotate(actor=request.user, subscription=subscription)
        subscription.refresh_from_db()
        return Response({**s.WebhookOutput(subscription).data, "secret": secret})


class DeliveryCursor(NewestFirstCursor):
    ordering = ("-created_at", "-id")  # delivery ids are random UUIDs


@extend_schema_view(
    get=extend_schema(operation_id="webhooks_deliveries_list", summary="The delivery log")
)
class WebhookDeliveryListApi(TenantListApiView):
    scopes = {"GET": Scope.WEBHOOKS_MANAGE}
    serializer_class = s.WebhookDeliveryOutput
    pagination_class = DeliveryCursor

    def list_queryset(self, tenant):
        subscription = webhook_subscription_get_visible(
            tenant=tenant, pk=self.kwargs["subscription_id"]
        )
        return webhook_delivery_list(tenant=tenant, subscription=subscription)

    def check_read(self, request: Request) -> None:
        _require_manager(request)


@extend_schema_view(
    get=extend_schema(operation_id="events_list", summary="Ingested identity and security events")
)
class EventListApi(TenantListApiView):
    scopes = {"GET": Scope.EVENTS_INGEST, "POST": Scope.EVENTS_INGEST}
    serializer_class = s.IngestedEventOutput

    def list_queryset(self, tenant):
        return ingested_event_list(tenant=tenant)

    def check_read(self, request: Request) -> None:
        enforce(can_ingest_events(request.user, request.tenant_access))

    @extend_schema(
        operation_id="events_ingest",
        summary="Send one event about a protected account (validated per type, deduplicated)",
        request=s.EventIngestInput,
        responses={201: s.IngestedEventOutput, 200: s.IngestedEventOutput},
    )
    def post(self, request: Request) -> Response:
        data = s.EventIngestInput(data=request.data)
        data.is_valid(raise_exception=True)
        event, created = event_ingest(
            actor=request.user, tenant=request.tenant, **data.validated_data
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(s.IngestedEventOutput(event).data, status=code)


@extend_schema_view(
    get=extend_schema(
        operation_id="siem_status",
        summary="The tenant's SIEM destination and how far its stream is behind",
        responses=s.SiemStatusOutput,
    ),
    put=extend_schema(
        operation_id="siem_set",
        summary="Set or change the SIEM collector (syslog over TLS, CEF or OCSF)",
        request=s.SiemDestinationInput,
        responses=s.SiemStatusOutput,
    ),
    delete=extend_schema(
        operation_id="siem_remove",
        summary="Stop streaming to the SIEM",
        request=None,
        responses={204: None},
    ),
)
class SiemDestinationApi(TenantApiView):
    scopes = {
        "GET": Scope.AUDIT_READ,
        "PUT": Scope.WEBHOOKS_MANAGE,
        "DELETE": Scope.WEBHOOKS_MANAGE,
    }

    def get(self, request: Request) -> Response:
        enforce(can_view_siem(request.user, request.tenant_access))
        return Response(s.SiemStatusOutput(siem_status(tenant=request.tenant)).data)

    def put(self, request: Request) -> Response:
        data = s.SiemDestinationInput(data=request.data)
        data.is_valid(raise_exception=True)
        siem_destination_set(actor=request.user, tenant=request.tenant, **data.validated_data)
        return Response(s.SiemStatusOutput(siem_status(tenant=request.tenant)).data)

    def delete(self, request: Request) -> Response:
        siem_destination_remove(actor=request.user, tenant=request.tenant)
        return Response(status=status.HTTP_204_NO_CONTENT)
