from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from tenants.views import healthz

# The Django admin only for verified staff: password and a TOTP token.
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("api.urls")),
    path("", include("recovery.owner_urls")),
    path("", include("recovery.owner.urls")),
    path("", include("recovery.challenges.urls")),
    path("", include("recovery.proofing.urls")),
    path("", include("tenants.urls")),
    # The web console, one module per area; each view is wrapped in tenants.console.tenant_view.
    path("t/<slug:tenant>/", include("recovery.cases.console_urls")),
    path("t/<slug:tenant>/review/", include("recovery.cases.review_urls")),
    path("t/<slug:tenant>/policy/", include("recovery.policy.console_urls")),
    path("t/<slug:tenant>/detection/", include("recovery.detection.console_urls")),
    path("t/<slug:tenant>/owner-idp/", include("recovery.owner.idp_console_urls")),
    path("t/<slug:tenant>/connector/", include("recovery.connectors.console_urls")),
    path("t/<slug:tenant>/audit/", include("audit.console_urls")),
]

handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"
