"""Console routes under /t/<tenant>/ (see templates/console/): the agent workspace, the case
page with its actions (each a POST to the same service the API calls) and the attended session
page of a trusted referee."""

from django.urls import path

from ..delegation import console_views as delegation_console_views
from ..owner import case_views as owner_case_views
from ..owner import idp_case_views
from . import attended_views, bundle_views, revert_views, views

urlpatterns = [
    path("workspace/", views.workspace_view, name="workspace"),
    path("workspace/accounts/<int:pk>/", views.workspace_account_view, name="workspace-account"),
    path(
        "workspace/accounts/<int:pk>/unfreeze/",
        revert_views.account_unfreeze_view,
        name="account-unfreeze",
    ),
    path("workspace/accounts/<int:pk>/open/", views.case_open_view, name="case-open"),
    path("cases/<int:pk>/", views.case_detail_view, name="case-detail"),
    path("cases/<int:pk>/take/", views.case_take_view, name="case-take"),
    path("cases/<int:pk>/context/", views.case_context_view, name="case-context"),
    path("cases/<int:pk>/challenges/", views.case_challenge_send_view, name="case-challenge-send"),
    path(
        "cases/<int:pk>/challenges/<int:challenge_pk>/verify/",
        views.case_challenge_verify_view,
        name="case-challenge-verify",
    ),
    path("cases/<int:pk>/attestation/", views.case_attestation_view, name="case-attestation"),
    path("cases/<int:pk>/proofing/", views.case_proofing_start_view, name="case-proofing-start"),
    # The owner's signals: a saved code read back (S1), in-app confirmation (S5).
    path(
        "cases/<int:pk>/recovery-code/",
        owner_case_views.case_recovery_code_view,
        name="case-recovery-code",
    ),
    path(
        "cases/<int:pk>/confirmation/",
        owner_case_views.case_confirmation_request_view,
        name="case-confirmation",
    ),
    path(
        "cases/<int:pk>/confirmation/status/",
        owner_case_views.confirmation_status_view,
        name="case-confirmation-status",
    ),
    path(
        "cases/<int:pk>/idp-sign-in/",
        idp_case_views.case_idp_sign_in_view,
        name="case-idp-sign-in",
    ),
    path("cases/<int:pk>/attended/", views.case_attended_start_view, name="case-attended-start"),
    path(
        "cases/<int:pk>/attended/<int:session_pk>/",
        attended_views.attended_session_view,
        name="case-attended",
    ),
    path(
        "cases/<int:pk>/attended/<int:session_pk>/coercion/",
        attended_views.attended_coercion_view,
        name="case-attended-coercion",
    ),
    path(
        "cases/<int:pk>/attended/<int:session_pk>/complete/",
        attended_views.attended_complete_view,
        name="case-attended-complete",
    ),
    path(
        "cases/<int:pk>/attended/<int:session_pk>/fraud/",
        attended_views.attended_fraud_view,
        name="case-attended-fraud",
    ),
    path("cases/<int:pk>/attachments/", views.case_attachment_add_view, name="case-attachment-add"),
    path(
        "cases/<int:pk>/attachments/<int:attachment_pk>/",
        views.case_attachment_view,
        name="case-attachment",
    ),
    path("cases/<int:pk>/notes/", views.case_note_view, name="case-note"),
    path("cases/<int:pk>/submit/", views.case_submit_view, name="case-submit"),
    path("cases/<int:pk>/cancel/", views.case_cancel_view, name="case-cancel"),
    path(
        "cases/<int:pk>/suspicious-caller/",
        views.case_suspicious_caller_view,
        name="case-suspicious-caller",
    ),
    path("cases/<int:pk>/execute/", views.case_execute_view, name="case-execute"),
    path(
        "cases/<int:pk>/step-up/options/",
        views.case_step_up_options_view,
        name="case-step-up-options",
    ),
    path("cases/<int:pk>/manual-step/", views.case_manual_step_view, name="case-manual-step"),
    path(
        "cases/<int:pk>/containment/record/",
        views.case_containment_record_view,
        name="case-containment-record",
    ),
    path(
        "cases/<int:pk>/revert/record/",
        revert_views.case_revert_record_view,
        name="case-revert-record",
    ),
    path(
        "cases/<int:pk>/delegation/record/",
        delegation_console_views.case_delegation_step_view,
        name="case-delegation-record",
    ),
    path("cases/<int:pk>/close/", views.case_close_view, name="case-close"),
]

# A case's evidence bundle, from the button on its audit timeline (issue 15).
urlpatterns += [
    path("cases/<int:pk>/bundle/", bundle_views.case_bundle_view, name="case-bundle"),
]
