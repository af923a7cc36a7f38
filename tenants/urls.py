from django.urls import path

from . import views

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.login_view, name="staff-login"),
    path("logout/", views.logout_view, name="staff-logout"),
    path("account/otp/", views.otp_verify_view, name="otp-verify"),
    path("account/otp/enrol/", views.otp_enrol_view, name="otp-enrol"),
    path("account/preferences/", views.preferences_view, name="preferences"),
    path("language/", views.language_switch_view, name="language-switch"),
    path("t/<slug:tenant>/", views.tenant_home_view, name="tenant-home"),
    path("t/<slug:tenant>/accounts/<int:pk>/", views.account_detail_view, name="account-detail"),
    path("t/<slug:tenant>/jobs/<int:pk>/", views.job_detail_view, name="job-detail"),
    path("t/<slug:tenant>/grants/", views.grant_list_view, name="grant-list"),
    path(
        "t/<slug:tenant>/grants/<int:pk>/approve/", views.grant_approve_view, name="grant-approve"
    ),
    path("t/<slug:tenant>/grants/<int:pk>/revoke/", views.grant_revoke_view, name="grant-revoke"),
]
