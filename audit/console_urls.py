"""Console routes under /t/<tenant>/audit/ (see templates/console/audit/)."""

from django.urls import path

from . import integrity_views, views

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
    path(
        "chain/integrity/step-up/",
        integrity_views.integrity_step_up_options_view,
        name="audit-integrity-step-up-options",
    ),
    path(
        "chain/integrity/acknowledge/",
        integrity_views.integrity_acknowledge_view,
        name="audit-integrity-acknowledge",
    ),
]
