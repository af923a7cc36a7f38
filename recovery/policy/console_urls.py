"""Console routes under /t/<tenant>/policy/ (see templates/console/policy/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.policy_home_view, name="policy-home"),
    path("versions/<int:pk>/", views.policy_version_view, name="policy-version"),
    path("versions/<int:pk>/request/", views.policy_request_view, name="policy-request"),
    path("versions/<int:pk>/approve/", views.policy_approve_view, name="policy-approve"),
    path("edit/", views.policy_edit_view, name="policy-edit"),
    path("validate/", views.policy_validate_view, name="policy-validate"),
    path("simulate/", views.policy_simulate_view, name="policy-simulate"),
    path("drafts/", views.policy_draft_create_view, name="policy-draft-create"),
    path("diff/", views.policy_diff_view, name="policy-diff"),
]
