"""Console routes under /t/<tenant>/owner-idp/ (see templates/console/owner_idp.html)."""

from django.urls import path

from . import idp_console_views as views

urlpatterns = [
    path("", views.idp_config_home_view, name="owner-idp-home"),
    path("drafts/", views.idp_config_draft_view, name="owner-idp-draft"),
    path("<int:pk>/approve/", views.idp_config_approve_view, name="owner-idp-approve"),
    path("<int:pk>/retire/", views.idp_config_retire_view, name="owner-idp-retire"),
]
