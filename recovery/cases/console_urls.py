"""Console routes under /t/<tenant>/ (see templates/console/): the agent workspace and the
case page with its actions (each a POST to the same service the API calls)."""

from django.urls import path

from . import views

urlpatterns = [
    path("workspace/", views.workspace_view, name="workspace"),
    path("workspace/accounts/<int:pk>/", views.workspace_account_view, name="workspace-account"),
    path("workspace/accounts/<int:pk>/open/", views.case_open_view, name="case-open"),
    path("cases/<int:pk>/", views.case_detail_view, name="case-detail"),
    path("cases/<int:pk>/evidence/", views.case_evidence_view, name="case-evidence"),
    path("cases/<int:pk>/challenges/", views.case_challenge_send_view, name="case-challenge-send"),
    path(
        "cases/<int:pk>/challenges/<int:challenge_pk>/verify/",
        views.case_challenge_verify_view,
        name="case-challenge-verify",
    ),
    path("cases/<int:pk>/attestation/", views.case_attestation_view, name="case-attestation"),
    path("cases/<int:pk>/attachments/", views.case_attachment_add_view, name="case-attachment-add"),
    path(
        "cases/<int:pk>/attachments/<int:attachment_pk>/",
        views.case_attachment_view,
        name="case-attachment",
    ),
    path("cases/<int:pk>/notes/", views.case_note_view, name="case-note"),
    path("cases/<int:pk>/submit/", views.case_submit_view, name="case-submit"),
    path("cases/<int:pk>/cancel/", views.case_cancel_view, name="case-cancel"),
    path("cases/<int:pk>/execute/", views.case_execute_view, name="case-execute"),
    path("cases/<int:pk>/manual-step/", views.case_manual_step_view, name="case-manual-step"),
    path("cases/<int:pk>/close/", views.case_close_view, name="case-close"),
]
