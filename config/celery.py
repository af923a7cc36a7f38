"""The Celery app. Its beat schedule is static: CELERY_BEAT_SCHEDULE in settings, not the DB."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("vouchsafe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
