"""The site's URLconf with the confirmation pages mounted as config/urls.py is to mount them
(`path("", include("recovery.challenges.urls"))`), so the page tests run before and after."""

from django.urls import include, path

from config.urls import urlpatterns as site_urlpatterns

urlpatterns = [path("", include("recovery.challenges.urls")), *site_urlpatterns]
