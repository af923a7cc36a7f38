"""Console routes under /t/<tenant>/connector/ (see templates/console/connector/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.connector_home_view, name="connector-home"),
    path("propose/", views.connector_propose_view, name="connector-propose"),
    path("test/", views.connector_test_view, name="connector-test"),
    path("changes/<int:pk>/approve/", views.connector_approve_view, name="connector-approve"),
    path("changes/<int:pk>/reject/", views.connector_reject_view, name="connector-reject"),
    path("changes/<int:pk>/withdraw/", views.connector_withdraw_view, name="connector-withdraw"),
]
