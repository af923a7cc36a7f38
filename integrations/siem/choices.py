"""The message formats a SIEM destination can ask for (names of standards: not translated)."""

from django.db import models


class SiemFormat(models.TextChoices):
    CEF = "cef", "CEF"
    OCSF = "ocsf", "OCSF JSON"
