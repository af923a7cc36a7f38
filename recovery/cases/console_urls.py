"""Console routes under /t/<tenant>/ (see templates/console/)."""

urlpatterns: list = []
