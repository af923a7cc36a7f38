"""A tenant's connector configuration. Re-exported by `recovery.models`."""

from auditlog.registry import auditlog
from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q

from tenants.querysets import TenantOwnedManager

from .choices import ConnectorKind


class ConnectorConfig(models.Model):
    """Which connector carries out the tenant's recoveries, and its settings.

    `settings` is validated per kind by `connector_configure` and stored with every default
    filled in, so what runs is what is shown. It never holds a secret: the LDAP bind password
    and the webhook signing key are read at use from environment variables it *names*.
    No row, or an inactive one, means the manual connector.
    """

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=ConnectorKind.choices)
    settings = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    updated_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ConnectorKind.values), name="connector_kind_known"
            ),
        ]

    def __str__(self) -> str:
        state = "" if self.is_active else ", inactive"
        return f"{self.kind} connector{state}"


# Field diffs underneath the audit trail; settings may hold a URL whose path is a credential of
# the receiver, so they stay out (connector.configured carries a safe summary and a hash).
auditlog.register(ConnectorConfig, exclude_fields=["settings", "updated_at"])
