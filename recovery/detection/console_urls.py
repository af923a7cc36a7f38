"""Console routes under /t/<tenant>/detection/ (see templates/console/detection/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("simulate/", views.detection_simulate_view, name="detection-simulate"),
]
