"""A tenant's connector configuration and the changes proposed to it. Re-exported by
`recovery.models`."""

import pgtrigger
from auditlog.registry import auditlog
from django.conf import settings as django_settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantOwnedManager

from .choices import ConnectorKind


class ConnectorConfig(models.Model):
    """Which connector carries out the tenant's recoveries, and its settings.

    `settings` is validated per kind and stored with every default filled in, so what runs is
    what is shown. It never holds a secret: passwords, keys and tokens are read at use from
    environment variables (or files) it *names*. No row, or an inactive one, means the manual
    connector. It changes only when a second tenant_admin approves a `ConnectorChange` (R-27).
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


class ConnectorChangeStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a second tenant admin")
    APPLIED = "applied", _("Approved and applied")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn by its requester")


class ConnectorChange(models.Model):
    """A configuration one tenant_admin proposed for the tenant's connector (dual control, R-27).

    A second tenant_admin (another account and another person) approves it with a fresh step-up,
    which applies it to `ConnectorConfig` in the same transaction; or it is rejected, or its
    requester withdraws it. `settings` are stored validated, as `validate_settings` returns
    them, and what was proposed never changes afterwards (a trigger refuses it), so what the
    approver reviewed is what is applied. `base_sha256` fingerprints the configuration in force
    when the change was proposed ("" for none): approval is refused once that has moved.
    At most one change per tenant is pending.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=ConnectorKind.choices)
    settings = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    base_sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=ConnectorChangeStatus.choices, default=ConnectorChangeStatus.PENDING
    )
    requested_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ConnectorKind.values), name="connector_change_kind_known"
            ),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status=ConnectorChangeStatus.PENDING),
                name="connector_change_one_pending",
            ),
            models.CheckConstraint(
                condition=Q(
                    status=ConnectorChangeStatus.PENDING,
                    decided_by__isnull=True,
                    decided_at__isnull=True,
                )
                | (
                    ~Q(status=ConnectorChangeStatus.PENDING)
                    & Q(decided_by__isnull=False, decided_at__isnull=False)
                ),
                name="connector_change_decided_has_decider",
            ),
            # Dual control in the database too: whoever applied a change did not request it.
            models.CheckConstraint(
                condition=~Q(status=ConnectorChangeStatus.APPLIED)
                | ~Q(decided_by=F("requested_by")),
                name="connector_change_applier_is_second_person",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="connector_change_proposal_immutable",
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange(
                    "tenant",
                    "kind",
                    "settings",
                    "is_active",
                    "base_sha256",
                    "requested_by",
                    "requested_at",
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} connector change ({self.status})"


# Field diffs underneath the audit trail; settings may hold a URL whose path is a credential of
# the receiver, so they stay out (the connector.* events carry a safe summary and a hash).
auditlog.register(ConnectorConfig, exclude_fields=["settings", "updated_at"])
auditlog.register(ConnectorChange, exclude_fields=["settings"])
