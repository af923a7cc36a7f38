"""Confirmation pages reached from a message: the owner's link and the manager's attestation.

Mounted at the site root (`path("", include("recovery.challenges.urls"))`); the services build
links as `PUBLIC_BASE_URL/verify/<token>/` and `PUBLIC_BASE_URL/attest/<token>/`.
"""

from django.urls import path

from . import views
from .services import ATTEST_PATH, CONFIRM_PATH

urlpatterns = [
    path(f"{CONFIRM_PATH}/<str:token>/", views.owner_confirm_view, name="challenge-confirm"),
    path(f"{ATTEST_PATH}/<str:token>/", views.attestation_confirm_view, name="attestation-confirm"),
]
