"""Console routes under /t/<tenant>/audit/ (see templates/console/audit/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.audit_timeline_view, name="audit-timeline"),
    path("cases/<int:case_id>/", views.audit_case_timeline_view, name="audit-case-timeline"),
    path("chain/", views.audit_chain_view, name="audit-chain"),
    path("chain/verify/", views.audit_chain_verify_view, name="audit-chain-verify"),
    path("export/", views.audit_export_start_view, name="audit-export"),
    path(
        "export/<int:pk>/download/",
        views.audit_export_download_view,
        name="audit-export-download",
    ),
]
