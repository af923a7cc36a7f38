"""Recovery routes under /api/v1/t/<tenant>/."""

from django.urls import path

from . import (
    alerts,
    attended,
    bundle,
    challenges,
    connectors,
    owner_enrolment,
    owner_idp,
    owner_signals,
    proofing,
    revert,
    views,
)

urlpatterns = [
    # Alerts as people work them (the raw raises are audit.api's alerts/).
    path("alerts/queue/", alerts.AlertQueueApi.as_view(), name="api-alert-queue"),
    path(
        "alerts/queue/<int:alert_id>/acknowledge/",
        alerts.AlertAcknowledgeApi.as_view(),
        name="api-alert-acknowledge",
    ),
    path(
        "alerts/queue/<int:alert_id>/resolve/",
        alerts.AlertResolveApi.as_view(),
        name="api-alert-resolve",
    ),
    path("accounts/sync/", views.AccountSyncApi.as_view(), name="api-accounts-sync"),
    path("approvals/", views.ApprovalListApi.as_view(), name="api-approvals"),
    path("exceptions/", views.ExceptionListApi.as_view(), name="api-exceptions"),
    path("policy/", views.PolicyCurrentApi.as_view(), name="api-policy"),
    path("policy/versions/", views.PolicyVersionListApi.as_view(), name="api-policy-versions"),
    path(
        "policy/versions/<int:version_id>/",
        views.PolicyVersionDetailApi.as_view(),
        name="api-policy-version",
    ),
    path(
        "policy/versions/<int:version_id>/request-activation/",
        views.PolicyActivationRequestApi.as_view(),
        name="api-policy-request-activation",
    ),
    path(
        "policy/versions/<int:version_id>/approve-activation/",
        views.PolicyActivationApproveApi.as_view(),
        name="api-policy-approve-activation",
    ),
    path("policy/validate/", views.PolicyValidateApi.as_view(), name="api-policy-validate"),
    path("policy/simulate/", views.PolicySimulateApi.as_view(), name="api-policy-simulate"),
    path("accounts/", views.AccountListApi.as_view(), name="api-accounts"),
    path("accounts/<int:account_id>/", views.AccountDetailApi.as_view(), name="api-account"),
    path(
        "accounts/<int:account_id>/unfreeze/",
        revert.AccountUnfreezeApi.as_view(),
        name="api-account-unfreeze",
    ),
    path("cases/", views.CaseListApi.as_view(), name="api-cases"),
    path("cases/<int:case_id>/", views.CaseDetailApi.as_view(), name="api-case"),
    path(
        "cases/<int:case_id>/evidence/", views.CaseEvidenceApi.as_view(), name="api-case-evidence"
    ),
    path("cases/<int:case_id>/context/", views.CaseContextApi.as_view(), name="api-case-context"),
    path("cases/<int:case_id>/submit/", views.CaseSubmitApi.as_view(), name="api-case-submit"),
    path("cases/<int:case_id>/take/", views.CaseTakeApi.as_view(), name="api-case-take"),
    path("cases/<int:case_id>/approve/", views.CaseApproveApi.as_view(), name="api-case-approve"),
    path("cases/<int:case_id>/deny/", views.CaseDenyApi.as_view(), name="api-case-deny"),
    path("cases/<int:case_id>/cancel/", views.CaseCancelApi.as_view(), name="api-case-cancel"),
    path("cases/<int:case_id>/execute/", views.CaseExecuteApi.as_view(), name="api-case-execute"),
    path(
        "cases/<int:case_id>/step-up/options/",
        views.CaseStepUpOptionsApi.as_view(),
        name="api-case-step-up-options",
    ),
    path("cases/<int:case_id>/close/", views.CaseCloseApi.as_view(), name="api-case-close"),
    path(
        "cases/<int:case_id>/containment/record/",
        views.CaseContainmentRecordApi.as_view(),
        name="api-case-containment-record",
    ),
    path(
        "cases/<int:case_id>/revert/record/",
        revert.CaseRevertRecordApi.as_view(),
        name="api-case-revert-record",
    ),
    path(
        "cases/<int:case_id>/delegation/record/",
        views.CaseDelegationRecordApi.as_view(),
        name="api-case-delegation-record",
    ),
    path(
        "cases/<int:case_id>/manual-step/",
        views.CaseManualStepApi.as_view(),
        name="api-case-manual-step",
    ),
    path("cases/<int:case_id>/notes/", views.CaseNoteApi.as_view(), name="api-case-notes"),
    path(
        "cases/<int:case_id>/summaries/", views.CaseSummaryApi.as_view(), name="api-case-summaries"
    ),
    path(
        "cases/<int:case_id>/attachments/",
        views.CaseAttachmentListApi.as_view(),
        name="api-case-attachments",
    ),
    path(
        "cases/<int:case_id>/attachments/<int:attachment_id>/",
        views.CaseAttachmentDownloadApi.as_view(),
        name="api-case-attachment",
    ),
]

# Verification challenges (S2 codes, S3 attestations).
urlpatterns += [
    path(
        "cases/<int:case_id>/challenges/",
        challenges.CaseChallengeListApi.as_view(),
        name="api-case-challenges",
    ),
    path(
        "cases/<int:case_id>/challenges/<int:challenge_id>/verify/",
        challenges.ChallengeVerifyApi.as_view(),
        name="api-case-challenge-verify",
    ),
    path(
        "cases/<int:case_id>/attestations/",
        challenges.CaseAttestationApi.as_view(),
        name="api-case-attestations",
    ),
    path(
        "cases/<int:case_id>/proofing/",
        proofing.CaseProofingStartApi.as_view(),
        name="api-case-proofing",
    ),
]

# Attended sessions (S4 by a trusted referee).
urlpatterns += [
    path(
        "cases/<int:case_id>/attended/",
        attended.CaseAttendedStartApi.as_view(),
        name="api-case-attended",
    ),
    path(
        "cases/<int:case_id>/attended/<int:session_id>/coercion/",
        attended.AttendedCoercionApi.as_view(),
        name="api-case-attended-coercion",
    ),
    path(
        "cases/<int:case_id>/attended/<int:session_id>/complete/",
        attended.AttendedCompleteApi.as_view(),
        name="api-case-attended-complete",
    ),
    path(
        "cases/<int:case_id>/attended/<int:session_id>/fraud/",
        attended.AttendedFraudApi.as_view(),
        name="api-case-attended-fraud",
    ),
]

# The owner's signals: a saved recovery code read back (S1), in-app confirmation (S5).
urlpatterns += [
    path(
        "cases/<int:case_id>/recovery-code/",
        owner_signals.CaseRecoveryCodeApi.as_view(),
        name="api-case-recovery-code",
    ),
    path(
        "cases/<int:case_id>/confirmation/",
        owner_signals.CaseConfirmationApi.as_view(),
        name="api-case-confirmation",
    ),
]

# Owner portal enrolment: the staff side sends the owner a one-time link.
urlpatterns += [
    path(
        "accounts/<int:account_id>/enrolment-invite/",
        owner_enrolment.AccountEnrolmentInviteApi.as_view(),
        name="api-account-enrolment-invite",
    ),
]

# The tenant's identity provider for account owners (dual control), and the agent's request
# for an IdP sign-in on a case (S5).
urlpatterns += [
    path("owner-idp/", owner_idp.OwnerIdpConfigListApi.as_view(), name="api-owner-idp"),
    path(
        "owner-idp/<int:config_id>/",
        owner_idp.OwnerIdpConfigDetailApi.as_view(),
        name="api-owner-idp-detail",
    ),
    path(
        "owner-idp/<int:config_id>/approve/",
        owner_idp.OwnerIdpConfigApproveApi.as_view(),
        name="api-owner-idp-approve",
    ),
    path(
        "owner-idp/<int:config_id>/retire/",
        owner_idp.OwnerIdpConfigRetireApi.as_view(),
        name="api-owner-idp-retire",
    ),
    path(
        "cases/<int:case_id>/idp-sign-in/",
        owner_idp.CaseIdpSignInApi.as_view(),
        name="api-case-idp-sign-in",
    ),
]

# The tenant's connector (dual control): propose, approve, reject, withdraw, test the connection.
urlpatterns += [
    path("connector/", connectors.ConnectorApi.as_view(), name="api-connector"),
    path(
        "connector/changes/<int:change_id>/approve/",
        connectors.ConnectorChangeApproveApi.as_view(),
        name="api-connector-change-approve",
    ),
    path(
        "connector/changes/<int:change_id>/reject/",
        connectors.ConnectorChangeRejectApi.as_view(),
        name="api-connector-change-reject",
    ),
    path(
        "connector/changes/<int:change_id>/withdraw/",
        connectors.ConnectorChangeWithdrawApi.as_view(),
        name="api-connector-change-withdraw",
    ),
    path("connector/test/", connectors.ConnectorTestApi.as_view(), name="api-connector-test"),
]

# A case's evidence bundle, for readers of the trail (issue 15).
urlpatterns += [
    path("cases/<int:case_id>/bundle/", bundle.CaseBundleApi.as_view(), name="api-case-bundle"),
]
