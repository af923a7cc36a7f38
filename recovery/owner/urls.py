"""The owner portal's pages (mounted at the site root; every path starts with `owner/`).

Each area adds its own routes here: enrolment, passkeys and saved codes (views_enrol),
in-app confirmation (views_confirm), identity provider sign-in (views_idp), binding a new
credential after a recovery (views_recovery).
"""

from django.urls import path

from . import views

urlpatterns = [
    path("owner/", views.home_view, name="owner-home"),
    path("owner/sign-out/", views.sign_out_view, name="owner-sign-out"),
]
