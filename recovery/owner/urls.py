"""The owner portal's pages (mounted at the site root; every path starts with `owner/`).

Each area adds its own routes here: enrolment, passkeys and saved codes (views_enrol),
in-app confirmation (views_confirm), identity provider sign-in (views_idp), binding a new
credential after a recovery (views_recovery).
"""

from django.urls import path

from ..delegation import owner_views as delegation_views
from . import views, views_confirm, views_enrol, views_idp, views_recovery

urlpatterns = [
    path("owner/", views.home_view, name="owner-home"),
    path("owner/sign-out/", views.sign_out_view, name="owner-sign-out"),
]

# [A] Enrolment: ask for a link, open it; passkeys and saved codes in the enrolment session.
urlpatterns += [
    path(
        "owner/t/<slug:tenant>/enrol/", views_enrol.enrol_request_view, name="owner-enrol-request"
    ),
    path("owner/enrol/<str:token>/", views_enrol.enrol_link_view, name="owner-enrol-link"),
    path(
        "owner/passkeys/register/options/",
        views_enrol.passkey_options_view,
        name="owner-passkey-options",
    ),
    path(
        "owner/passkeys/register/", views_enrol.passkey_register_view, name="owner-passkey-register"
    ),
    path(
        "owner/passkeys/<int:passkey_id>/remove/",
        views_enrol.passkey_remove_view,
        name="owner-passkey-remove",
    ),
    path("owner/codes/", views_enrol.codes_view, name="owner-codes"),
]

# [B] In-app confirmation (S5): the link in the request message; no session.
urlpatterns += [
    path("owner/confirm/<str:token>/", views_confirm.confirm_view, name="owner-confirm"),
    path(
        "owner/confirm/<str:token>/options/",
        views_confirm.confirm_options_view,
        name="owner-confirm-options",
    ),
    path(
        "owner/confirm/<str:token>/assert/",
        views_confirm.confirm_assert_view,
        name="owner-confirm-assert",
    ),
    path(
        "owner/confirm/<str:token>/not-me/",
        views_confirm.confirm_not_me_view,
        name="owner-confirm-not-me",
    ),
]

# [C] Sign-in with the tenant's identity provider (OpenID Connect): to enrol, or as S5 on a
# case from an agent's link. The callback comes first: "callback" is not a link token.
urlpatterns += [
    path("owner/idp/callback/", views_idp.idp_callback_view, name="owner-idp-callback"),
    path("owner/idp/<str:token>/", views_idp.idp_link_view, name="owner-idp-link"),
    path(
        "owner/idp/<str:token>/not-me/",
        views_idp.idp_link_not_me_view,
        name="owner-idp-not-me",
    ),
    path("owner/t/<slug:tenant>/sign-in/", views_idp.idp_enrol_view, name="owner-idp-enrol"),
]

# [D] Binding the new credential after a recovery: artifact sessions only.
urlpatterns += [
    path("owner/pass/", views_recovery.pass_view, name="owner-pass"),
    path("owner/recovery/", views_recovery.recovery_view, name="owner-recovery"),
    path(
        "owner/recovery/password/",
        views_recovery.recovery_password_view,
        name="owner-recovery-password",
    ),
    path(
        "owner/recovery/passkey/options/",
        views_recovery.recovery_passkey_options_view,
        name="owner-recovery-passkey-options",
    ),
    path(
        "owner/recovery/authenticator/",
        views_recovery.recovery_authenticator_view,
        name="owner-recovery-authenticator",
    ),
    # With a cloud connector: the one-time pass, then the binding the connector reports.
    path(
        "owner/recovery/pass/",
        views_recovery.recovery_temporary_pass_view,
        name="owner-recovery-temporary-pass",
    ),
    path(
        "owner/recovery/confirm/",
        views_recovery.recovery_cloud_confirm_view,
        name="owner-recovery-confirm",
    ),
]

# [E] The mailbox owner's answer to a request for access to a mailbox they own (issue 14):
# in their own session, an identity provider sign-in (recovery.delegation).
urlpatterns += [
    path("owner/mailbox-access/", delegation_views.delegations_view, name="owner-delegations"),
    path(
        "owner/mailbox-access/<int:pk>/decide/",
        delegation_views.delegation_decide_view,
        name="owner-delegation-decide",
    ),
]
