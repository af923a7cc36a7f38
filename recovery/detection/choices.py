from django.db import models
from django.utils.translation import gettext_lazy as _


class CallerKind(models.TextChoices):
    """What identified the contact behind a case (R-55 d, R-56)."""

    NUMBER = "number", _("Inbound phone number")
    EMAIL = "email", _("Email address it came from")
    CHAT = "chat", _("Chat handle")
    NAME = "name", _("Name given")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved")
    FALSE_POSITIVE = "false_positive", _("False positive")


UNRESOLVED = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
