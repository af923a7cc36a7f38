"""Identity-proofing routes at the site root: the providers' signed verdicts, and the
development provider's vendor page (mounted only while that provider is configured)."""

from django.conf import settings
from django.urls import path

from . import views
from .providers import DEV_PAGE_PATH

urlpatterns = [
    path("proofing/<slug:provider>/verdict/", views.verdict_view, name="proofing-verdict"),
]
if views.DEV_PROVIDER in getattr(settings, "PROOFING_PROVIDERS", {}):
    urlpatterns.append(
        path(f"{DEV_PAGE_PATH}/<str:nonce>/", views.dev_vendor_view, name="dev-proofing")
    )
