"""Console routes under /t/<tenant>/audit/ (see templates/console/audit/)."""

from django.urls import path

from . import integrity_views, retention_views, views

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
    path("retention/", retention_views.audit_retention_view, name="audit-retention"),
    path("retention/days/", retention_views.audit_retention_set_view, name="audit-retention-set"),
    path("retention/holds/", retention_views.audit_hold_place_view, name="audit-hold-place"),
    path(
        "retention/holds/<int:pk>/release/",
        retention_views.audit_hold_release_view,
        name="audit-hold-release",
    ),
    path("retention/purges/", retention_views.audit_purge_request_view, name="audit-purge-request"),
    path(
        "retention/purges/<int:pk>/cancel/",
        retention_views.audit_purge_cancel_view,
        name="audit-purge-cancel",
    ),
    path(
        "retention/purges/<int:pk>/step-up/",
        retention_views.audit_purge_step_up_options_view,
        name="audit-purge-step-up-options",
    ),
    path(
        "retention/purges/<int:pk>/approve/",
        retention_views.audit_purge_approve_view,
        name="audit-purge-approve",
    ),
    path(
        "retention/purges/<int:pk>/execute/",
        retention_views.audit_purge_execute_view,
        name="audit-purge-execute",
    ),
]
