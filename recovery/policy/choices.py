from django.db import models


class PolicyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING_ACTIVATION = "pending_activation", "Pending activation (awaiting a second admin)"
    ACTIVE = "active", "Active"
    SUPERSEDED = "superseded", "Superseded"


class PolicyFormat(models.TextChoices):
    YAML = "yaml", "YAML"
    JSON = "json", "JSON"
