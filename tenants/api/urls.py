"""Tenancy routes under /api/v1/t/<tenant>/."""

from django.urls import path

from . import views

urlpatterns = [
    path("api-keys/", views.ApiKeyListApi.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>/", views.ApiKeyDetailApi.as_view(), name="api-key"),
    path("grants/", views.GrantListApi.as_view(), name="api-grants"),
    path("grants/<int:grant_id>/", views.GrantDetailApi.as_view(), name="api-grant"),
]
