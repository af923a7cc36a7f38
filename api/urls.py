"""/api/v1/: the schema, its documentation page (served locally), and every tenant's routes."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tenants.api.views import ProviderGrantListApi

tenant_routes = [
    path("", include("recovery.api.urls")),
    path("", include("tenants.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("integrations.api.urls")),
]

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("t/<slug:tenant>/", include(tenant_routes)),
    path(
        "p/<slug:provider>/grants/",
        ProviderGrantListApi.as_view(),
        name="api-provider-grants",
    ),
]
