"""Audit routes under /api/v1/t/<tenant>/."""

from django.urls import path

from . import integrity, views

urlpatterns = [
    path("audit/events/", views.AuditEventListApi.as_view(), name="api-audit-events"),
    path("audit/export/", views.AuditExportApi.as_view(), name="api-audit-export"),
    path("audit/verification/", views.AuditVerificationApi.as_view(), name="api-audit-verify"),
    path("alerts/", views.AlertListApi.as_view(), name="api-alerts"),
    path("audit/integrity/", integrity.AuditIntegrityApi.as_view(), name="api-audit-integrity"),
]
