"""Tenancy routes under /api/v1/t/<tenant>/."""

from django.urls import path

from . import views

urlpatterns = [
    path("api-keys/", views.ApiKeyListApi.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>/", views.ApiKeyDetailApi.as_view(), name="api-key"),
    path("grants/", views.GrantListApi.as_view(), name="api-grants"),
    path("grants/<int:grant_id>/", views.GrantDetailApi.as_view(), name="api-grant"),
    path("incident/", views.IncidentApi.as_view(), name="api-incident"),
    path("alert-routes/", views.AlertRouteListApi.as_view(), name="api-alert-routes"),
    path(
        "alert-routes/<int:route_id>/approve/",
        views.AlertRouteApproveApi.as_view(),
        name="api-alert-route-approve",
    ),
    path(
        "alert-routes/<int:route_id>/remove/",
        views.AlertRouteRemoveApi.as_view(),
        name="api-alert-route-remove",
    ),
    path(
        "alert-routes/<int:route_id>/reject/",
        views.AlertRouteRejectApi.as_view(),
        name="api-alert-route-reject",
    ),
    path(
        "alert-routes/<int:route_id>/withdraw/",
        views.AlertRouteWithdrawApi.as_view(),
        name="api-alert-route-withdraw",
    ),
]
