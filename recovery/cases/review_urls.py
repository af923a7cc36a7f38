"""Console routes under /t/<tenant>/review/ (see templates/console/review/)."""

from django.urls import path

from . import review_views as views
from .choices import Decision

urlpatterns = [
    path("", views.review_queue_view, name="review-queue"),
    path("security/", views.security_queue_view, name="review-security"),
    path("<int:pk>/", views.review_case_view, name="review-case"),
    path(
        "alerts/<int:pk>/acknowledge/",
        views.alert_acknowledge_view,
        name="review-alert-acknowledge",
    ),
    path("alerts/<int:pk>/resolve/", views.alert_resolve_view, name="review-alert-resolve"),
    path(
        "<int:pk>/approve/",
        views.review_decide_view,
        {"decision": Decision.APPROVED},
        name="review-approve",
    ),
    path(
        "<int:pk>/deny/",
        views.review_decide_view,
        {"decision": Decision.DENIED},
        name="review-deny",
    ),
]
