"""The project's URLs plus the bench-only baseline endpoint (bench.settings only)."""

from django.urls import path

from bench.baseline.views import BaselineItemCreateApi
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("bench/baseline/items/", BaselineItemCreateApi.as_view(), name="bench-baseline-items"),
    *project_urlpatterns,
]
