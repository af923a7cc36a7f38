"""Integration routes under /api/v1/t/<tenant>/."""

from django.urls import path

from . import views

urlpatterns = [
    path("webhooks/", views.WebhookListApi.as_view(), name="api-webhooks"),
    path("webhooks/<int:subscription_id>/", views.WebhookDetailApi.as_view(), name="api-webhook"),
    path(
        "webhooks/<int:subscription_id>/rotate-secret/",
        views.WebhookSecretRotateApi.as_view(),
        name="api-webhook-rotate",
    ),
    path(
        "webhooks/<int:subscription_id>/deliveries/",
        views.WebhookDeliveryListApi.as_view(),
        name="api-webhook-deliveries",
    ),
    path("events/", views.EventListApi.as_view(), name="api-events"),
    path("siem/", views.SiemDestinationApi.as_view(), name="api-siem"),
]
