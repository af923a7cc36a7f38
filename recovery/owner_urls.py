"""Owner pages (reached from messages): recovery links and "this wasn't me"."""

from django.urls import path

from . import owner_views

urlpatterns = [
    path("recover/<str:token>/", owner_views.recover_view, name="owner-recover"),
    path("not-me/<str:token>/", owner_views.not_me_view, name="owner-not-me"),
]
