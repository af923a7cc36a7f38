from django.urls import path

from . import incident_views, passkey_views, route_views, views

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.login_view, name="staff-login"),
    path("logout/", views.logout_view, name="staff-logout"),
    path("account/otp/", views.otp_verify_view, name="otp-verify"),
    path("account/otp/enrol/", views.otp_enrol_view, name="otp-enrol"),
    path(
        "account/passkey/sign-in/options/",
        passkey_views.passkey_sign_in_options_view,
        name="staff-passkey-sign-in-options",
    ),
    path(
        "account/passkey/sign-in/",
        passkey_views.passkey_sign_in_view,
        name="staff-passkey-sign-in",
    ),
    path("account/passkeys/", passkey_views.passkeys_view, name="staff-passkeys"),
    path(
        "account/passkeys/step-up/options/",
        passkey_views.passkey_step_up_options_view,
        name="staff-passkey-step-up-options",
    ),
    path("account/passkeys/add/", passkey_views.passkey_add_view, name="staff-passkey-add"),
    path(
        "account/passkeys/register/options/",
        passkey_views.passkey_register_options_view,
        name="staff-passkey-register-options",
    ),
    path(
        "account/passkeys/register/",
        passkey_views.passkey_register_view,
        name="staff-passkey-register",
    ),
    path(
        "account/passkeys/<int:pk>/remove/",
        passkey_views.passkey_remove_view,
        name="staff-passkey-remove",
    ),
    path(
        "account/passkeys/replacement/",
        passkey_views.passkey_replacement_request_view,
        name="staff-passkey-replacement-request",
    ),
    path(
        "account/passkeys/replacements/<int:pk>/options/",
        passkey_views.passkey_replacement_options_view,
        name="staff-passkey-replacement-options",
    ),
    path(
        "account/passkeys/replacements/<int:pk>/approve/",
        passkey_views.passkey_replacement_approve_view,
        name="staff-passkey-replacement-approve",
    ),
    path("account/preferences/", views.preferences_view, name="preferences"),
    path("language/", views.language_switch_view, name="language-switch"),
    path("t/<slug:tenant>/", views.tenant_home_view, name="tenant-home"),
    path("t/<slug:tenant>/accounts/<int:pk>/", views.account_detail_view, name="account-detail"),
    path("t/<slug:tenant>/jobs/<int:pk>/", views.job_detail_view, name="job-detail"),
    path("t/<slug:tenant>/grants/", views.grant_list_view, name="grant-list"),
    path("t/<slug:tenant>/alert-routes/", route_views.routes_view, name="alert-routes"),
    path(
        "t/<slug:tenant>/alert-routes/propose/",
        route_views.route_propose_view,
        name="alert-route-propose",
    ),
    path(
        "t/<slug:tenant>/alert-routes/<int:pk>/approve/",
        route_views.route_approve_view,
        name="alert-route-approve",
    ),
    path(
        "t/<slug:tenant>/alert-routes/<int:pk>/reject/",
        route_views.route_reject_view,
        name="alert-route-reject",
    ),
    path(
        "t/<slug:tenant>/alert-routes/<int:pk>/withdraw/",
        route_views.route_withdraw_view,
        name="alert-route-withdraw",
    ),
    path(
        "t/<slug:tenant>/alert-routes/<int:pk>/remove/",
        route_views.route_remove_view,
        name="alert-route-remove",
    ),
    path("t/<slug:tenant>/incident/", incident_views.incident_view, name="incident"),
    path(
        "t/<slug:tenant>/incident/switch/",
        incident_views.incident_switch_view,
        name="incident-switch",
    ),
    path(
        "t/<slug:tenant>/grants/<int:pk>/approve/", views.grant_approve_view, name="grant-approve"
    ),
    path("t/<slug:tenant>/grants/<int:pk>/revoke/", views.grant_revoke_view, name="grant-revoke"),
]
