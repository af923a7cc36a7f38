from django.db import models
from django.utils.translation import gettext_lazy as _


class PolicyStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING_ACTIVATION = "pending_activation", _("Pending activation (awaiting a second admin)")
    ACTIVE = "active", _("Active")
    SUPERSEDED = "superseded", _("Superseded")


class PolicyFormat(models.TextChoices):
    YAML = "yaml", _("YAML")
    JSON = "json", _("JSON")
